"""The commands' own PostgreSQL connection (db, keys, sync-convex): one, autocommit, every way it fails
said in one line, and how a command names a database in its output (never with its password)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from services.postgres import migrations


def first_line(error: BaseException) -> str:
    """What a command prints of an error: its first line (a server error's DETAIL and HINT follow it)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def connect(config: Mapping[str, Any], application_name: str) -> psycopg.Connection:
    """A connection to DATABASE_URL, or a one-line ClickException."""
    # A transaction pooler (PgBouncer, Supavisor's transaction mode) cannot keep prepared statements.
    prepare = {"prepare_threshold": None} if config.get("DATABASE_POOL_MODE") == "transaction" else {}
    try:
        return psycopg.connect(config["DATABASE_URL"], autocommit=True, connect_timeout=10,
                               application_name=application_name, **prepare)
    except psycopg.OperationalError as error:
        raise click.ClickException(f"cannot connect to DATABASE_URL: {first_line(error)}") from None


def pending(conn: psycopg.Connection, schema: str) -> list[migrations.Migration]:
    """The migrations `schema` still lacks, or a one-line ClickException when they cannot be read."""
    try:
        return migrations.pending(conn, schema)
    except psycopg.Error as error:
        raise click.ClickException(f"cannot read the migration version: {first_line(error)}") from None


def connect_migrated(config: Mapping[str, Any], application_name: str) -> psycopg.Connection:
    """A connection to DATABASE_URL with DATABASE_SCHEMA as its search path, refused (one line) while a
    migration is pending: the commands read and write the schema of the latest migration."""
    conn = connect(config, application_name)
    schema = config["DATABASE_SCHEMA"]
    try:
        behind = pending(conn, schema)
        if behind:
            raise click.ClickException(f"schema {schema} is behind ({behind[0].label} pending): "
                                       "run `flask --app app db upgrade` first")
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def scoped(conn: psycopg.Connection, config: Mapping[str, Any]) -> Iterator[psycopg.Connection]:
    """A transaction that sees DATABASE_SCHEMA: through a transaction pooler each transaction may
    land on another server session, so the session's search path cannot be relied on there."""
    with conn.transaction():
        if config.get("DATABASE_POOL_MODE") == "transaction":
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(config["DATABASE_SCHEMA"])))
        yield conn


def connection_label(dsn: str, schema: str | None = None) -> str:
    """`host:port/dbname` (with `#schema` when given): which database, never its password."""
    parts = conninfo_to_dict(dsn)
    label = f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
    return label if schema is None else f"{label}#{schema}"
