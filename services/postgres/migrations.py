"""Versioned schema migrations (docs/contract.md §12): `flask --app app db upgrade`.

The files in migrations/ are applied in version order, each at most once,
recorded in `kontak_schema_migrations` inside DATABASE_SCHEMA. A session
advisory lock keeps two upgrades from running at once. A file whose first
line is `-- kontak:no-transaction` runs statement by statement outside a
transaction (CREATE INDEX CONCURRENTLY cannot run inside one); every other
file runs in one transaction with a bounded lock wait, so a busy table makes
the upgrade fail and leave nothing half-done instead of queueing writes.

Nothing here runs from the request path: the service only reads the
version table (`pending`) and refuses to answer while the schema is behind.
"""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from services.config import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
VERSION_TABLE = "kontak_schema_migrations"
NO_TRANSACTION = "-- kontak:no-transaction"
LOCK_TIMEOUT = "5s"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def transactional(self) -> bool:
        return not self.path.read_text(encoding="utf-8").startswith(NO_TRANSACTION)


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files, oldest first."""
    found = []
    for path in directory.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path))
    return sorted(found, key=lambda m: m.version)


def latest_version() -> int:
    return available()[-1].version


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"kontak-migrations:{schema}".encode())


def applied(conn: psycopg.Connection, schema: str) -> set[int]:
    """Versions recorded in `schema` (empty when Kontak's migrations never ran there)."""
    table = f"{schema}.{VERSION_TABLE}"
    if conn.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone()[0]:
        return set()
    query = sql.SQL("SELECT version FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(VERSION_TABLE))
    return {row[0] for row in conn.execute(query)}


def pending(conn: psycopg.Connection, schema: str) -> list[Migration]:
    """Migrations not yet applied to `schema`: two cheap catalogue reads, no DDL."""
    done = applied(conn, schema)
    return [m for m in available() if m.version not in done]


def split_statements(text: str) -> list[str]:
    """Statements of a no-transaction file: `;` at the end of a line ends one (no bodies with `;`)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M) if s.strip()]


def _prepare(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("""CREATE TABLE IF NOT EXISTS {} (
        version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
                 .format(sql.Identifier(VERSION_TABLE)))


def _record(conn: psycopg.Connection, migration: Migration) -> None:
    conn.execute(sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(sql.Identifier(VERSION_TABLE)),
                 (migration.version, migration.name))


def _drop_invalid_indexes(conn: psycopg.Connection, schema: str) -> None:
    """A CONCURRENTLY build that was interrupted leaves an INVALID index behind; build it again."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT i.indisvalid""",
        (schema,)).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))


def _apply(conn: psycopg.Connection, schema: str, migration: Migration) -> None:
    text = migration.path.read_text(encoding="utf-8")
    if migration.transactional:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute(text, prepare=False)
            _record(conn, migration)
        return
    _drop_invalid_indexes(conn, schema)
    for statement in split_statements(text):
        conn.execute(statement, prepare=False)
    _record(conn, migration)


def _lock(conn: psycopg.Connection, key: int, timeout: float = 600) -> None:
    """The migration lock, polled: a session blocked in pg_advisory_lock holds a snapshot, and
    CREATE INDEX CONCURRENTLY in the session holding the lock would wait for it (a deadlock)."""
    deadline = time.monotonic() + timeout
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        if time.monotonic() > deadline:
            raise TimeoutError("another db upgrade holds the migration lock")
        time.sleep(0.2)


def upgrade(conn: psycopg.Connection, schema: str = "public", up_to: int | None = None) -> list[Migration]:
    """Apply every pending migration to `schema` (those up to version `up_to` when given); return those applied.

    `up_to` builds a database as an older Kontak left it, so a test can fill it and then upgrade it.

    `conn` must be an autocommit session of its own (not through a
    transaction pooler): the lock and CONCURRENTLY builds are session features.
    It leaves the session's search_path at `schema`.
    """
    if not conn.autocommit:
        raise ValueError("upgrade needs an autocommit connection")
    key = _lock_key(schema)
    _lock(conn, key)
    try:
        _prepare(conn, schema)
        todo = [m for m in pending(conn, schema) if up_to is None or m.version <= up_to]
        for migration in todo:
            _apply(conn, schema, migration)
        return todo
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
