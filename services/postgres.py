"""The PostgreSQL connection pool: one per process, opened after fork.

Failures are translated here, once, into the API errors of SPEC section 3:
unreachable or pool exhausted -> 503, statement timeout -> 504, anything
else the server says -> 502.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from flask import Flask, current_app
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from services import migrations
from services.errors import BackendError, BackendTimeout, BackendUnavailable, ConnectionLost

# While the schema is behind, look again at most this often (an upgrade fixes it without a restart).
SCHEMA_RECHECK_S = 5.0
logger = logging.getLogger("kontak")
T = TypeVar("T")


def apply_schema(conn: psycopg.Connection, schema: str = "public") -> None:
    """Alias of `migrations.upgrade` for older callers: never called from the request path."""
    migrations.upgrade(conn, schema)


class Database:
    """Lazily opened pool; reopened in a forked child, never shared across processes."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._schema_ready = False
        self._schema_checked_at = -SCHEMA_RECHECK_S
        self._schema_logged = False
        # False until a connection is known to work, and again once the pool
        # has failed to connect: then each request first tries one connection
        # of its own, so a database that is down answers 503 at once instead
        # of after the whole pool timeout.
        self._reachable = False

    def _connection_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,  # a lookup is one statement: no BEGIN/COMMIT round trips
            "connect_timeout": self.settings["DATABASE_CONNECT_TIMEOUT"],
            "application_name": "kontak",
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

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = ConnectionPool(
                        self.settings["DATABASE_URL"],
                        min_size=self.settings["DATABASE_POOL_MIN_SIZE"],
                        max_size=self.settings["DATABASE_POOL_MAX_SIZE"],
                        timeout=self.settings["DATABASE_POOL_TIMEOUT"],
                        kwargs=self._connection_kwargs(),
                        # No endless background retries while the database is down:
                        # the next request that needs a connection tries again.
                        reconnect_timeout=0,
                        reconnect_failed=self._reconnect_failed,
                        name="kontak",
                        open=False,
                    )
                    self._pool.open(wait=False)
                    self._pid = os.getpid()
                    self._schema_ready = False
                    self._reachable = False
        return self._pool

    def _reconnect_failed(self, pool: ConnectionPool) -> None:
        self._reachable = False

    def _probe(self) -> None:
        """One direct connection, bounded by the connect timeout: BackendUnavailable if it fails."""
        try:
            psycopg.connect(self.settings["DATABASE_URL"], **self._connection_kwargs()).close()
        except psycopg.Error as exc:
            logger.warning("database unavailable: %s", type(exc).__name__)
            raise BackendUnavailable() from None
        self._reachable = True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; database failures leave as API errors."""
        pool = self.pool
        if not self._reachable:
            self._probe()
        try:
            with pool.connection() as conn:
                if not self._schema_ready:
                    self._require_current_schema(conn)
                with self._scoped(conn):
                    yield conn
        except PoolTimeout:
            raise BackendUnavailable() from None
        except pg_errors.QueryCanceled:
            raise BackendTimeout() from None
        except psycopg.OperationalError as exc:
            logger.warning("database unavailable: %s", type(exc).__name__)
            raise ConnectionLost() from None
        except psycopg.Error as exc:
            logger.error("database error: %s (sqlstate %s)", type(exc).__name__, exc.sqlstate)
            raise BackendError() from None

    def schema_pending(self, conn: psycopg.Connection) -> list[str]:
        """Labels of the migrations this database still lacks (two catalogue reads, no DDL)."""
        return [m.label for m in migrations.pending(conn, self.settings.get("DATABASE_SCHEMA", "public"))]

    def _require_current_schema(self, conn: psycopg.Connection) -> None:
        """Once per process: the schema is at the latest migration, else 503 (and one log line)."""
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
        """search_path = DATABASE_SCHEMA. Session mode sets it at connect (`options`); a
        transaction pooler refuses startup options and mixes sessions, so there a
        non-public schema costs a transaction with SET LOCAL around the caller's work."""
        schema = self.settings.get("DATABASE_SCHEMA", "public")
        if self.settings["DATABASE_POOL_MODE"] != "transaction" or schema == "public":
            yield
            return
        with conn.transaction():
            conn.execute(f"SET LOCAL search_path TO {schema}")
            yield

    def read(self, run: Callable[[psycopg.Connection], T]) -> T:
        """Run a read-only `run(conn)`; once more on a fresh connection if the
        first one was dropped (a restarted database leaves dead connections
        in the pool). Writes never come through here: they are not retried."""
        try:
            with self.connection() as conn:
                return run(conn)
        except ConnectionLost:
            with self.connection() as conn:
                return run(conn)

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


def get_db() -> Database:
    return current_app.extensions["kontak.db"]


def init_app(app: Flask) -> None:
    # The pool's own connection warnings repeat Kontak's one-line ones over two lines.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    app.extensions["kontak.db"] = Database(app.config)
