"""`flask --app app db upgrade | check | import-legacy`: the schema and the data of docs/contract.md §12.

These commands connect to DATABASE_URL directly (use the database's own
port, not a transaction pooler: the migration lock and CONCURRENTLY index
builds are session features).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click
import psycopg
from flask import Flask, current_app
from flask.cli import AppGroup
from tqdm import tqdm

from commands.connection import connect, connect_migrated, first_line, pending
from commands.db import schema_check
from commands.db.legacy_import import import_legacy
from commands.db.legacy_source import TABLES, ImportReport, LegacyImportError
from commands.db.legacy_values import MAX_TEXT_BYTES
from services.config import conninfo_problem, is_utf8
from services.postgres import migrations

db_cli = AppGroup("db", help="Kontak's PostgreSQL schema: migrations, check, import from the original CRM.")


def _connect() -> psycopg.Connection:
    return connect(current_app.config, "kontak-db")


def _schema() -> str:
    return current_app.config["DATABASE_SCHEMA"]


def _busy_tables(conn: psycopg.Connection, schema: str) -> str:
    """The tables of `schema` other sessions hold a lock on now (what a migration waited for)."""
    rows = conn.execute(
        """SELECT c.relname, string_agg(DISTINCT l.pid::text, ', ')
           FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND l.granted AND l.pid <> pg_backend_pid()
           GROUP BY c.relname ORDER BY c.relname""", (schema,)).fetchall()
    if not rows:
        return "a table it changes was busy (the other session has let go since)"
    return "busy: " + "; ".join(f"{table} (held by pid {pids})" for table, pids in rows)


def _upgrade_failed(conn: psycopg.Connection, before: list[migrations.Migration], error: BaseException) -> str:
    """One line: which migration stopped, why, and that nothing of it was applied."""
    after = migrations.pending(conn, _schema())
    still = {m.version for m in after}
    for migration in before:
        if migration.version not in still:  # those before it stay applied: each file is its own transaction
            click.echo(f"applied {migration.label}")
    which = after[0].label if after else "the upgrade"
    if isinstance(error, psycopg.errors.LockNotAvailable):
        # The file's own lock_timeout (migrations.LOCK_TIMEOUT unless it sets one) ran out.
        why = f"a table it changes stayed locked past lock_timeout, {_busy_tables(conn, _schema())}"
    else:
        why = first_line(error)
    return f"{which} not applied: {why}; nothing of it was written, run db upgrade again"


@db_cli.command("upgrade")
def upgrade_command() -> None:
    """Apply the pending migrations (migrations/*.sql) to DATABASE_SCHEMA."""
    started = time.perf_counter()
    with _connect() as conn:
        before = pending(conn, _schema())
        try:
            applied = migrations.upgrade(conn, _schema())
        except TimeoutError as error:  # another db upgrade holds the migration lock
            raise click.ClickException(f"{error}; nothing was applied") from None
        except psycopg.Error as error:
            raise click.ClickException(_upgrade_failed(conn, before, error)) from None
    for migration in applied:
        click.echo(f"applied {migration.label}")
    latest = f"{migrations.latest_version():04d}"
    click.echo(f"schema {_schema()}: at migration {latest} "
               f"({len(applied)} applied in {time.perf_counter() - started:.1f} s)")


@db_cli.command("check")
@click.option("--verbose", "-v", is_flag=True, help="Also list everything that fits.")
def check_command(verbose: bool) -> None:
    """Report what fits docs/contract.md §2 and what does not; exit 0 only when everything fits."""
    with _connect() as conn:
        try:
            report = schema_check.check(conn, _schema())
        except psycopg.Error as error:  # say, a table it may not read
            raise click.ClickException(f"db check could not read the database: {first_line(error)}") from None
    if verbose:
        for line in report.fits:
            click.echo(f"ok       {line}")
    for line in report.problems:
        click.echo(f"MISSING  {line}" if line.startswith("missing") else f"WRONG    {line}")
    if report.ok:
        click.echo(f"schema {_schema()}: fits docs/contract.md §2 ({len(report.fits)} checks)")
        return
    click.echo(f"schema {_schema()}: {len(report.problems)} problem(s)", err=True)
    sys.exit(1)


class _Progress:
    """The import's progress bar: rows read from the source, with rows/s."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, total: int) -> Callable[[], None]:
        self.bar = tqdm(total=total, unit=" rows", desc="import", mininterval=0.5)
        return lambda: self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def print_report(report: ImportReport) -> None:
    click.echo(f"{'table':<15}{'read':>10}{'inserted':>10}{'updated':>10}{'skipped':>10}")
    for table in TABLES:
        click.echo(f"{table:<15}{report.read[table]:>10,}{report.inserted[table]:>10,}"
                   f"{report.updated[table]:>10,}{report.skipped[table]:>10,}")
    sections = (("rejected (phone did not normalise, or no workspace)", report.rejects),
                (f"too large for Convex (content over max_text_bytes, {MAX_TEXT_BYTES:,} bytes; not imported)",
                 report.too_large),
                ("adjusted (a value Kontak holds differently; docs/own-data.md)", report.adjusted),
                ("merged contacts (same number after normalisation)", report.merged_contacts),
                ("merged conversations (several for one contact)", report.merged_conversations))
    for title, lines in sections:
        click.echo(f"{title}: {len(lines)}")
        for line in lines:
            click.echo(f"  {line}")
    if report.written == 0:
        click.echo("nothing new: the target already holds everything this source can give")
    else:
        click.echo(f"written: {report.written:,} rows")


@db_cli.command("import-legacy")
@click.option("--source", required=True, metavar="DSN", help="The original CRM's PostgreSQL (read only).")
@click.option("--source-schema", default="public", show_default=True, help="Schema of its tables.")
def import_legacy_command(source: str, source_schema: str) -> None:
    """Import the original CRM's workspaces, contacts, notes, conversations and messages."""
    problem = conninfo_problem(source)
    if problem:
        raise click.ClickException(f"--source: {problem}")
    if not is_utf8(source_schema):
        raise click.ClickException("--source-schema: not valid UTF-8")
    with connect_migrated(current_app.config, "kontak-db") as conn:
        started, progress = time.perf_counter(), _Progress()
        try:
            report = import_legacy(source, conn, current_app.config["DEFAULT_REGION"], source_schema, progress)
        except LegacyImportError as error:
            raise click.ClickException(f"{error}; nothing was written") from None
        except psycopg.OperationalError as error:
            where = "DATABASE_URL" if conn.broken else "source"  # the one whose connection was lost, or the source
            raise click.ClickException(f"{where}: {first_line(error)}; nothing was written") from None
        except psycopg.Error as error:  # a row the target refused: its constraint, in one line
            raise click.ClickException(f"import stopped: {first_line(error)}; nothing was written") from None
        finally:
            progress.close()
    click.echo(f"imported from {report.source} (read-only) in {time.perf_counter() - started:.1f} s")
    print_report(report)


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
