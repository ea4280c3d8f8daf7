"""The commands' own PostgreSQL connection: one, autocommit, refused while migrations are pending."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import psycopg
from psycopg import sql

from services.postgres import migrations


def connect_migrated(config: Mapping[str, Any], application_name: str) -> psycopg.Connection:
    """A connection to DATABASE_URL with DATABASE_SCHEMA as its search path, or a one-line ClickException."""
    try:
        conn = psycopg.connect(config["DATABASE_URL"], autocommit=True, connect_timeout=10,
                               application_name=application_name)
    except psycopg.OperationalError as error:
        raise click.ClickException(f"cannot connect to DATABASE_URL: {str(error).strip().splitlines()[0]}") from None
    schema = config["DATABASE_SCHEMA"]
    behind = migrations.pending(conn, schema)
    if behind:
        conn.close()
        raise click.ClickException(f"schema {schema} is behind ({behind[0].label} pending): run db upgrade first")
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn
