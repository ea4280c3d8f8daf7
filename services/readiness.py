"""Readiness of the two backends: checked at once, side by side, within one second in all.

Each check has its own connection (PostgreSQL) or request (Convex), never a
pooled one that a frozen backend may be holding, and its own deadline; the
two run concurrently (greenlets under the gevent worker) and whatever has not
answered when the bound is up counts as unavailable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
from urllib3.exceptions import HTTPError

from services.convex.client import LOOKUP_PATH, ConvexClient
from services.deadline import Alarm, DeadlineExceeded, cut_socket, interrupt_after
from services.postgres.pool import Database

CHECK_TIMEOUT = 1.0
# What each check may take, leaving the rest of the second for answering.
_EACH = 0.8


def postgres_state(db: Database, timeout: float = _EACH) -> str:
    """PostgreSQL as /readyz reports it: ok, unavailable, or "schema behind" (lookups answer 503)."""
    try:
        with interrupt_after(timeout):
            conn = psycopg.connect(db.settings["DATABASE_URL"], **db.connection_kwargs())
    except (psycopg.Error, DeadlineExceeded):
        return "unavailable"
    alarm = Alarm(timeout, cut_socket, conn.pgconn.socket)
    try:
        behind = db.schema_pending(conn)
    except psycopg.Error:
        return "unavailable"
    finally:
        alarm.cancel()
        conn.close()
    return "schema behind" if behind else "ok"


def convex_state(convex: ConvexClient, timeout: float = _EACH) -> str:
    """The HTTP action answers, and accepts our key: 400 "Missing parameters" says both."""
    try:
        response = convex.get_once(LOOKUP_PATH, {}, timeout=min(timeout, convex.timeout))
    except HTTPError:
        return "unavailable"
    return "ok" if response.status == 400 else "unavailable"


def check_all(checks: dict[str, Callable[[], str]], bound: float = CHECK_TIMEOUT * 0.9) -> dict[str, str]:
    """Run `checks` concurrently; any that has not answered within `bound` is "unavailable"."""
    states: dict[str, str] = {}

    def run(name: str, check: Callable[[], str]) -> None:
        states[name] = check()

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in checks.items()]
    for thread in threads:
        thread.start()
    ends = time.monotonic() + bound
    for thread in threads:
        thread.join(max(0.0, ends - time.monotonic()))
    return {name: states.get(name, "unavailable") for name in checks}
