"""The follower as its own process and the stack every follow figure runs on (bench/follow.py): the
database, the Convex stand-in, gunicorn, `sync-convex --follow` caught up; and the small probes of them
(status, outbox rows, caught up, CPU seconds)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.data import SEED, database_url, seed_database
from bench.measure import API_KEY, Gunicorn
from commands.compare import synthetic
from commands.sync import capture
from tools.convex_standin import ConvexStandin
from tools.servers import FollowerProcess, free_port

DATABASE = "bench_follow"
CONTACTS = 10_000
# the webhook secret gunicorn is started with (bench/follow_ingest.py signs its deliveries with it)
SECRET = "bench-follow-" + uuid.uuid4().hex


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return capture.status(conn)


def outbox_rows(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM kontak_changes").fetchone()[0]


def wait_caught_up(url: str, follower: FollowerProcess, timeout: float) -> float:
    """Seconds until the follower holds a whole copy and the outbox is empty."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not follower.alive():
            raise RuntimeError(f"the follower exited: {follower.log()[-2000:]}")
        report = status(url)
        if report["backfilled"] and report["backlog"] == 0:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise TimeoutError(f"the follower did not catch up in {timeout:.0f} s: {status(url)}; {follower.log()[-2000:]}")


@dataclass
class Stack:
    """The database, the stand-in, gunicorn on both, the follower (caught up): what every figure uses."""

    url: str
    standin: ConvexStandin
    server: Gunicorn | None
    follower: FollowerProcess
    copy_seconds: float
    workspace: dict[str, Any]


@contextmanager
def follow_stack(admin_url: str, tmp: Path, contacts: int, serve: bool = True) -> Iterator[Stack]:
    """Database DATABASE (`contacts` synthetic contacts), an empty stand-in, gunicorn (when `serve`),
    and a follower started and caught up (its whole first copy made)."""
    url = database_url(admin_url, DATABASE)
    seed_database(admin_url, url, DATABASE, contacts, 1)
    standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin-follow.log")
    standin.start()
    env = {"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    follower = FollowerProcess(env, tmp / "follower.log")
    server = None
    try:
        if serve:
            server = Gunicorn({**env, "KAPSO_WEBHOOK_SECRET": SECRET}, tmp / "gunicorn-follow.log")
        follower.start()
        copy_seconds = wait_caught_up(url, follower, timeout=600)
        log(f"follower: copy of {contacts:,} contacts made and caught up in {copy_seconds:.1f} s")
        yield Stack(url, standin, server, follower, copy_seconds, synthetic.workspaces(SEED)[0])
    finally:
        code = follower.stop()
        if code not in (0, None):
            log(f"follower exited with {code}")
        if server is not None:
            server.stop()
        standin.stop()

