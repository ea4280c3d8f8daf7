"""Fixtures: a real embedded PostgreSQL, the app, its test client, real servers.

Nothing here imitates Kontak's own database or HTTP layer: the tests talk
to PostgreSQL, PgBouncer and gunicorn processes started for the session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app import create_app
from services.convex_client import ConvexAdmin
from services.embedded_pg import EmbeddedPostgres
from services.migrations import upgrade
from services.pg_store import load_dataset
from tools.convex_standin import ConvexStandin
from tools.servers import GunicornServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "contract"
API_KEY = "test-key-5f2c9d8e"
WORKSPACE = "00000000-0000-4000-8000-000000000001"
OTHER_WORKSPACE = "00000000-0000-4000-8000-000000000002"
TABLES = "workspaces, contacts, conversations, messages, contact_notes"
LIVE_SECRET = "live-webhook-secret-77"


# Everything Kontak's own loggers emit during the whole session, for test_zz_logs.py.
CAPTURED_LOGS: list[str] = []


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        CAPTURED_LOGS.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def capture_app_logs() -> Iterator[None]:
    handler = _CaptureHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("kontak", "kontak.timing")]
    for logger in loggers:
        logger.addHandler(handler)
    yield
    for logger in loggers:
        logger.removeHandler(handler)


def sign(body: bytes, secret: str) -> str:
    """X-Webhook-Signature: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_contract(name: str) -> Any:
    return json.loads((CONTRACT / name).read_text(encoding="utf-8"))


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
def app(env: dict[str, str]):
    application = create_app(env)
    yield application
    application.extensions["kontak.db"].close()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def auth() -> dict[str, str]:
    return {"x-api-key": API_KEY}


@pytest.fixture()
def timing_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The SPEC section 6 lines logged so far in this test."""
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
        server.stop()


@pytest.fixture(scope="module")
def live(postgres, standin, tmp_path_factory):
    """A real gunicorn on demo data in both backends, for the whole module."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        load_dataset(conn, load_contract("demo_data.json"))
    admin = ConvexAdmin(standin.url, API_KEY)
    admin.clear()
    admin.import_dataset(load_contract("demo_data.json"))
    server = GunicornServer({"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url,
                             "KAPSO_WEBHOOK_SECRET": LIVE_SECRET}, tmp_path_factory.mktemp("fuzz") / "gunicorn.log")
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
