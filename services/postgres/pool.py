"""The PostgreSQL connection pool: one per process, opened after fork.

Failures are translated here, once, into the API errors of docs/contract.md §3:
unreachable or pool exhausted -> 503, statement timeout -> 504, anything
else the server says -> 502.

Every use of a connection has a client-side deadline (docs/contract.md §11), so a
frozen or partitioned server cannot hold a request: the whole operation —
probe, pool wait, statements, the one retry of a read — fits in
DATABASE_STATEMENT_TIMEOUT_MS plus half a second (a write: at most 8 s, inside
Kapso's 10). When it runs out, the connection's socket is shut down: the
statement and any ROLLBACK on the way out fail at once, the pool discards the
connection, and the caller gets BackendTimeout. A bulkhead and a circuit
breaker (services/breaker.py) sit in front of it all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from flask import Flask, current_app
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from services.backend import Backend
from services.deadline import Alarm, Budget, DeadlineExceeded, cut_socket, interrupt_after
from services.errors import BackendDown, BackendError, BackendTimeout, BackendUnavailable, ConnectionLost
from services.postgres import migrations

# While the schema is behind, look again at most this often (an upgrade fixes it without a restart).
SCHEMA_RECHECK_S = 5.0
# Past the server's own statement_timeout, which should fire first and leave the
# connection usable; the client-side deadline is for a server that cannot answer.
DEADLINE_MARGIN_S = 0.5
# Kapso wants an answer within 10 s: a write gives up well before that.
WRITE_DEADLINE_S = 8.0
logger = logging.getLogger("kontak")
T = TypeVar("T")


class Database(Backend):
    """PostgreSQL: a psycopg pool and a guard per process (services/backend.py)."""

    name = "postgres"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings["DATABASE_MAX_CONCURRENCY"], settings["BREAKER_FAILURES"],
                         settings["BREAKER_PAUSE_SECONDS"])
        self.settings = settings
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._schema_checked_at = -SCHEMA_RECHECK_S
        self._schema_logged = False
        # False until a connection is known to work, and again once the pool
        # has failed to connect: then each request first tries one connection
        # of its own, so a database that is down answers 503 at once instead
        # of after the whole pool timeout.
        self._reachable = False
        self._pool_stale = False
        self._scope_each_use = False
        statement_s = settings["DATABASE_STATEMENT_TIMEOUT_MS"] / 1000
        self.read_deadline = statement_s + DEADLINE_MARGIN_S
        # A write is a few statements in one transaction (and the webhook's retries of it).
        self.write_deadline = min(max(2 * statement_s, self.read_deadline), WRITE_DEADLINE_S)

    def connection_kwargs(self) -> dict[str, Any]:
        statement_ms = self.settings["DATABASE_STATEMENT_TIMEOUT_MS"]
        kwargs: dict[str, Any] = {
            "autocommit": True,  # a lookup is one statement: no BEGIN/COMMIT round trips
            "connect_timeout": self.settings["DATABASE_CONNECT_TIMEOUT"],
            "application_name": "kontak",
            # A partitioned network: an idle pooled connection is found dead by keepalives,
            # one with unacknowledged data by tcp_user_timeout (libpq, client side only).
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": statement_ms + 1000,
        }
        if self.settings["DATABASE_POOL_MODE"] == "transaction":
            # Transaction poolers (PgBouncer, Supavisor on 6543) hand each
            # transaction to any server connection: no prepared statements,
            # no session options.
            kwargs["prepare_threshold"] = None
        else:
            kwargs["prepare_threshold"] = 0
            kwargs["options"] = (f"-c statement_timeout={self.settings['DATABASE_STATEMENT_TIMEOUT_MS']}"
                                 f" -c search_path={self.settings.get('DATABASE_SCHEMA', 'public')}")
        return kwargs

    def _open_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self.settings["DATABASE_URL"],
            min_size=self.settings["DATABASE_POOL_MIN_SIZE"],
            max_size=self.settings["DATABASE_POOL_MAX_SIZE"],
            timeout=self.settings["DATABASE_POOL_TIMEOUT"],
            kwargs=self.connection_kwargs(),
            # No endless background retries while the database is down:
            # the next request that needs a connection tries again.
            reconnect_timeout=0,
            reconnect_failed=self._reconnect_failed,
            name="kontak",
            open=False,
        )
        pool.open(wait=False)
        self._schema_ready = False
        self._reachable = False
        # Only a transaction pooler with a non-public schema needs SET LOCAL around each use.
        self._scope_each_use = (self.settings["DATABASE_POOL_MODE"] == "transaction"
                                and self.settings.get("DATABASE_SCHEMA", "public") != "public")
        return pool

    def _reconnect_failed(self, pool: ConnectionPool) -> None:
        self._reachable = False
        # The database went away: the connections the pool still holds may be dead ones.
        self._pool_stale = True

    def _discard_pooled(self) -> None:
        """Close the idle pooled connections and retire those in use when they come back (the pool
        makes fresh ones): after a restart of the database they are all dead, and handing them out one
        by one would fail a request — or the breaker's probe, for another pause — per dead connection."""
        self._pool_stale = False
        if self._pool is not None:
            self._pool.drain()

    def _probe(self, budget: Budget) -> None:
        """One direct connection within the budget (and the connect timeout): BackendDown if it fails."""
        try:
            with interrupt_after(budget.remaining()):
                psycopg.connect(self.settings["DATABASE_URL"], **self.connection_kwargs()).close()
        except (psycopg.Error, DeadlineExceeded) as exc:
            logger.warning("database unavailable: %s", type(exc).__name__)
            raise BackendDown() from None
        self._reachable = True
        if self._pool_stale:
            self._discard_pooled()

    def _run_bounded(self, run: Callable[[psycopg.Connection], T], budget: Budget) -> T:
        """`_run_once`, and once more on a fresh connection when the pooled one turned out dead.

        A restarted server leaves every pooled connection dead: the first one found drains the
        pool (`_api_error`), and the call is made again here, inside the same bulkhead and breaker
        call, so the breaker counts no failure for it and no worker re-opens for another pause. A
        write is safe to run again: the webhook's transaction either committed (its messages are
        then duplicates) or left nothing.
        """
        try:
            return self._run_once(run, budget)
        except ConnectionLost:
            if budget.remaining() <= 0:
                raise
            return self._run_once(run, budget)

    def _run_once(self, run: Callable[[psycopg.Connection], T], budget: Budget) -> T:
        """`run(conn)` on a pooled connection, the whole use of it (checkout, statements, the pool's
        own ROLLBACK) bounded by `budget`; database failures leave as API errors."""
        pool = self.pool
        if not self._reachable:
            self._probe(budget)
        remaining = budget.remaining()
        if remaining <= 0:
            raise BackendTimeout()
        alarm: Alarm | None = None
        try:
            try:
                with pool.connection(timeout=min(self.settings["DATABASE_POOL_TIMEOUT"], remaining)) as conn:
                    remaining = budget.remaining()
                    if remaining <= 0:
                        raise BackendTimeout()
                    alarm = Alarm(remaining, cut_socket, conn.pgconn.socket)
                    if not self._schema_ready:
                        self._require_current_schema(conn)
                    if self._scope_each_use:
                        with self._scoped(conn):
                            return run(conn)
                    return run(conn)
            finally:
                if alarm is not None:
                    alarm.cancel()
        except psycopg.Error as exc:
            raise self._api_error(exc, alarm, budget) from None

    def _api_error(self, exc: psycopg.Error, alarm: Alarm | None, budget: Budget) -> Exception:
        """The API error for a database failure (logged here, once)."""
        if isinstance(exc, PoolTimeout):
            # A breaker failure too: whether the connections are stuck in a frozen server, new
            # ones cannot be made, or all are busy with slow statements, the next caller would
            # wait as long for nothing.
            return BackendDown()
        if isinstance(exc, pg_errors.QueryCanceled):
            return BackendTimeout()
        if alarm is not None and alarm.fired:
            logger.warning("database did not answer within %.1f s", budget.seconds)
            return BackendTimeout()
        if isinstance(exc, psycopg.OperationalError):
            logger.warning("database unavailable: %s", type(exc).__name__)
            # One pooled connection found dead: the others made before it most likely are too.
            self._discard_pooled()
            return ConnectionLost()
        logger.error("database error: %s (sqlstate %s)", type(exc).__name__, exc.sqlstate)
        return BackendError()

    def schema_pending(self, conn: psycopg.Connection) -> list[str]:
        """Labels of the migrations this database still lacks (two catalogue reads, no DDL)."""
        return [m.label for m in migrations.pending(conn, self.settings.get("DATABASE_SCHEMA", "public"))]

    def _require_current_schema(self, conn: psycopg.Connection) -> None:
        """Once per process: the schema is at the latest migration, else 503 (and one log line).
        Concurrent first requests wait for the one check instead of answering 503 meanwhile."""
        with self._schema_lock:
            if not self._schema_ready:
                self._check_schema(conn)

    def _check_schema(self, conn: psycopg.Connection) -> None:
        now = time.monotonic()
        if now - self._schema_checked_at < SCHEMA_RECHECK_S:
            raise BackendUnavailable()
        self._schema_checked_at = now
        behind = self.schema_pending(conn)
        if not behind:
            self._schema_ready = True
            return
        if not self._schema_logged:
            self._schema_logged = True
            logger.error("database schema behind: %d migration(s) pending (%s); run `flask --app app db upgrade`",
                         len(behind), ", ".join(behind))
        raise BackendUnavailable()

    @contextmanager
    def _scoped(self, conn: psycopg.Connection) -> Iterator[None]:
        """search_path = DATABASE_SCHEMA for a transaction pooler (only used then: `_scope_each_use`).
        Session mode sets it at connect (`options`); a transaction pooler refuses startup options
        and mixes sessions, so there a non-public schema costs a transaction with SET LOCAL."""
        with conn.transaction():
            conn.execute(f"SET LOCAL search_path TO {self.settings['DATABASE_SCHEMA']}")
            yield

    def read(self, run: Callable[[psycopg.Connection], T]) -> T:
        """Run a read-only `run(conn)`, guarded, within the read deadline."""
        with self.guarded():
            return self._run_bounded(run, Budget(self.read_deadline))

    def write(self, run: Callable[[psycopg.Connection], T]) -> T:
        """Run `run(conn)`, guarded, within the write deadline (inside Kapso's 10 s)."""
        with self.guarded():
            return self._run_bounded(run, Budget(self.write_deadline))



def get_db() -> Database:
    return current_app.extensions["kontak.db"]


def init_app(app: Flask) -> None:
    # The pool's own connection warnings repeat Kontak's one-line ones over two lines.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    app.extensions["kontak.db"] = Database(app.config)
