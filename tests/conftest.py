"""Fixtures: a real embedded PostgreSQL, the app, its test client, real servers.

Nothing here imitates Kontak's own database or HTTP layer: the tests talk
to PostgreSQL, PgBouncer and gunicorn processes started for the session.
Fixtures only: the constants and plain helpers tests import are in helpers.py.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from flask import Flask

from app import create_app
from helpers import (
    API_KEY,
    LIVE_SECRET,
    TABLES,
    close_app,
    load_contract,
    log_leaks,
    postgres_processes,
    signal_each,
    start_pgbouncer,
)
from services.convex.admin import ConvexAdmin
from services.postgres.dataset import load_dataset
from services.postgres.migrations import upgrade
from tools.convex_standin import ConvexStandin
from tools.delay_proxy import DelayProxy
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import FollowerProcess, GunicornServer, free_port

SERVER_LOGS = ("gunicorn*.log", "standin*.log")


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _server_log_sizes(base: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for pattern in SERVER_LOGS for path in base.rglob(pattern)}


@pytest.fixture(autouse=True)
def logs_hold_no_secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """After every test: what that test made Kontak log (its own loggers, and the lines it added to any
    gunicorn or stand-in log of the session) holds no unmasked phone, key, secret, signature, workspace
    key (or its hash or prefix) and no message text. Yields `logged()`: this test's text so far."""
    handler = _ListHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("kontak", "kontak.timing")]
    for logger in loggers:
        logger.addHandler(handler)
    base = tmp_path_factory.getbasetemp()
    before = _server_log_sizes(base)

    def logged() -> str:
        added = []
        for path, size in _server_log_sizes(base).items():
            with path.open("rb") as file:
                file.seek(before.get(path, 0) if size >= before.get(path, 0) else 0)
                added.append(file.read().decode(errors="replace"))
        return "\n".join(handler.lines + added)

    yield logged
    for logger in loggers:
        logger.removeHandler(handler)
    leaks = log_leaks(logged())
    if leaks:
        pytest.fail(f"this test made Kontak log what it must not: {leaks[:5]}", pytrace=False)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), durable=False)
    server.start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        upgrade(conn)
    yield server
    server.stop("immediate")


@pytest.fixture()
def db(postgres: EmbeddedPostgres) -> Iterator[psycopg.Connection]:
    """A direct connection to an emptied database."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        yield conn


@pytest.fixture()
def load(db: psycopg.Connection) -> Callable[[dict[str, Any]], dict[str, int]]:
    """Load a data set (contract/demo_data.json format) into PostgreSQL."""
    return lambda dataset: load_dataset(db, dataset)


@pytest.fixture()
def demo(load: Callable) -> dict[str, Any]:
    dataset = load_contract("demo_data.json")
    load(dataset)
    return dataset


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvexStandin]:
    """The local Convex stand-in: the project's own Convex functions over HTTP."""
    server = ConvexStandin(API_KEY, port=free_port(), log_file=tmp_path_factory.mktemp("standin") / "standin.log",
                           webhook_secret=LIVE_SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def convex(standin: ConvexStandin) -> ConvexAdmin:
    """The stand-in, emptied: load data with `.import_dataset(dataset)`."""
    admin = ConvexAdmin(standin.url, API_KEY)
    admin.clear()
    return admin


@pytest.fixture()
def env(postgres: EmbeddedPostgres, standin: ConvexStandin) -> dict[str, str]:
    """The environment a user would give Kontak for these tests."""
    return {"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}


@pytest.fixture()
def make_app(env: dict[str, str]) -> Iterator[Callable[..., Flask]]:
    """`make_app(**overrides)`: an app on the test environment with `overrides` (None removes a variable);
    every app made is closed at teardown."""
    made: list[Flask] = []

    def make(**overrides: str | None) -> Flask:
        merged = {**env, **overrides}
        application = create_app({name: value for name, value in merged.items() if value is not None})
        made.append(application)
        return application

    yield make
    for application in made:
        close_app(application)


@pytest.fixture()
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def auth() -> dict[str, str]:
    return {"x-api-key": API_KEY}


@pytest.fixture()
def timing_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The docs/contract.md §6 lines logged so far in this test."""
    logger = logging.getLogger("kontak.timing")
    logger.addHandler(caplog.handler)
    yield lambda: [r.getMessage() for r in caplog.records if r.name == "kontak.timing"]
    logger.removeHandler(caplog.handler)


@pytest.fixture()
def gunicorn(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., GunicornServer]]:
    started: list[GunicornServer] = []

    def start(**overrides: str) -> GunicornServer:
        server = GunicornServer({**env, **overrides}, tmp_path / f"gunicorn-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(quick=True)


@pytest.fixture(scope="session")
def backends_of_their_own(postgres: EmbeddedPostgres) -> Callable[..., Any]:
    """`with backends_of_their_own(base, dataset) as (database_url, standin):` for a module-scoped
    fixture: a database of its own on the session's PostgreSQL and a stand-in of its own, both holding
    `dataset`, so no function-scoped fixture that empties the shared ones reaches them."""
    return lambda base, dataset: _backends_of_their_own(postgres, base, dataset)


@contextmanager
def _backends_of_their_own(postgres: EmbeddedPostgres, base: Path,
                           dataset: dict[str, Any]) -> Iterator[tuple[str, ConvexStandin]]:
    name = f"module_{base.name}".replace("-", "_").lower()
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        load_dataset(conn, dataset)
    standin = ConvexStandin(API_KEY, data_file=None, port=free_port(), log_file=base / "standin.log",
                            webhook_secret=LIVE_SECRET)
    standin.start()
    try:
        ConvexAdmin(standin.url, API_KEY).import_dataset(dataset)
        yield url, standin
    finally:
        standin.stop()
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def live(backends_of_their_own, tmp_path_factory):
    """A real gunicorn on demo data in both backends of its own, for the whole module (`.standin` is
    its Convex stand-in)."""
    base = tmp_path_factory.mktemp("live")
    with backends_of_their_own(base, load_contract("demo_data.json")) as (url, standin):
        server = GunicornServer({"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url,
                                 "KAPSO_WEBHOOK_SECRET": LIVE_SECRET}, base / "gunicorn.log")
        server.standin = standin  # its own: deliveries into Convex go there
        yield server
        assert "Traceback" not in server.log()
        server.stop()


@pytest.fixture()
def new_database(postgres: EmbeddedPostgres) -> Iterator[Callable[[str], str]]:
    """`new_database(name)`: the URL of a fresh, empty database on the test server (dropped afterwards)."""
    made: list[str] = []

    def make(name: str) -> str:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return postgres.url.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def own_postgres(tmp_path: Path) -> Iterator[Callable[..., EmbeddedPostgres]]:
    """`own_postgres(*datasets, durable=True)`: a fresh embedded PostgreSQL of this test's own, migrated, with
    `datasets` loaded. The test may stop, crash or freeze (SIGSTOP) it; teardown thaws and stops it."""
    started: list[EmbeddedPostgres] = []

    def make(*datasets: dict[str, Any], durable: bool = True) -> EmbeddedPostgres:
        server = EmbeddedPostgres(tmp_path / f"pg-{len(started)}", free_port(), durable=durable)
        started.append(server)
        server.start()
        with psycopg.connect(server.url, autocommit=True) as conn:
            upgrade(conn)
            for dataset in datasets:
                load_dataset(conn, dataset)
        return server

    yield make
    for server in started:
        try:
            signal_each(postgres_processes(server), signal.SIGCONT)
        except (OSError, ValueError, IndexError, psutil.Error):
            pass  # not running
        server.stop("immediate")


@pytest.fixture()
def own_standin(tmp_path: Path) -> Iterator[Callable[..., ConvexStandin]]:
    """`own_standin(dataset=None)`: a Convex stand-in of this test's own (with `dataset` imported). The test
    may stop, kill or freeze (SIGSTOP) it; teardown thaws and stops it."""
    started: list[ConvexStandin] = []

    def make(dataset: dict[str, Any] | None = None) -> ConvexStandin:
        server = ConvexStandin(API_KEY, data_file=None, port=free_port(),
                               log_file=tmp_path / f"standin-{len(started)}.log")
        started.append(server)
        server.start()
        if dataset is not None:
            ConvexAdmin(server.url, API_KEY).import_dataset(dataset)
        return server

    yield make
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()


@pytest.fixture()
def slowed_proxy() -> Iterator[Callable[[str, float], DelayProxy]]:
    """`slowed_proxy(url, delay_seconds)`: a TCP proxy (tools/delay_proxy.py) to `url`'s port that delays every
    chunk by `delay_seconds` each way (`.delay` may be changed while it runs); its URL is
    `http://127.0.0.1:{proxy.port}`. Stopped at teardown."""
    started: list[DelayProxy] = []

    def make(url: str, delay_seconds: float) -> DelayProxy:
        proxy = DelayProxy(int(url.rsplit(":", 1)[1].split("/", 1)[0]), delay_seconds=delay_seconds)
        proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture()
def follower_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], FollowerProcess]]:
    """`follower_process(env)`: `sync-convex --follow` on `env` as a process of its own (not started;
    `.start()`, `.kill()`, `.stop()`, `.log()`). Stopped at teardown."""
    made: list[FollowerProcess] = []

    def make(env: dict[str, str]) -> FollowerProcess:
        process = FollowerProcess(env, tmp_path / f"follower-{len(made)}.log")
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


@pytest.fixture()
def pgbouncer_for(tmp_path: Path) -> Iterator[Callable[[EmbeddedPostgres], str]]:
    """`pgbouncer_for(server)`: the URL of a real PgBouncer in transaction mode in front of `server`'s
    postgres database (Debian 12 ships 1.18: no prepared statements). Stopped at teardown."""
    started: list[subprocess.Popen] = []

    def start(server: EmbeddedPostgres) -> str:
        url, process = start_pgbouncer(server, tmp_path / f"pgbouncer-{len(started)}")
        started.append(process)
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


@pytest.fixture()
def pgbouncer(postgres: EmbeddedPostgres, pgbouncer_for: Callable[[EmbeddedPostgres], str]) -> str:
    """PgBouncer (transaction mode) in front of the session's PostgreSQL."""
    return pgbouncer_for(postgres)
