"""`flask --app app sync-convex`: everything in PostgreSQL into the Convex deployment, then verified."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import psycopg
from flask import Flask, current_app
from flask.cli import with_appcontext
from tqdm import tqdm

from commands.connection import connect_migrated, connection_label, scoped
from commands.keys import workspace_keys
from commands.sync import capture, follow, postgres_to_convex, verification
from services.config import PROJECT_ROOT
from services.convex.admin import ConvexAdmin, ConvexRefused
from services.errors import ApiError
from services.postgres.dataset import sample_contacts

DEFAULT_STATE = PROJECT_ROOT / ".data" / "sync-convex-state.json"


def _connect(config: dict[str, Any]) -> psycopg.Connection:
    return connect_migrated(config, "kontak-sync-convex")


def _copy(conn: psycopg.Connection, admin: ConvexAdmin, state: postgres_to_convex.SyncState,
          batch: int) -> postgres_to_convex.SyncResult:
    total = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
    started, rows = time.perf_counter(), 0
    with tqdm(total=total, initial=min(state.contacts, total), unit=" contacts", desc="Convex",
              mininterval=0.5) as bar:
        def advance(contacts: int, batch_rows: int) -> None:
            nonlocal rows
            rows += batch_rows
            bar.set_postfix_str(f"{rows / max(time.perf_counter() - started, 1e-9):,.0f} rows/s", refresh=False)
            bar.update(contacts)

        return postgres_to_convex.sync(conn, admin, state, batch, advance)


def _get(client: Any, key: str):
    def get(path: str, query: dict[str, str]) -> tuple[int, Any]:
        response = client.get(path, query_string=query, headers={"x-api-key": key})
        return response.status_code, response.get_json()
    return get


def _verify(conn: psycopg.Connection, admin: ConvexAdmin, samples: int) -> verification.Verification:
    report = verification.Verification()
    verification.verify_counts(conn, admin, report)
    probes = sample_contacts(conn, samples)
    timing = logging.getLogger("kontak.timing")
    level = timing.level
    timing.setLevel(logging.WARNING)  # one timing line per verification request would bury the report
    try:
        verification.verify_lookups(_get(current_app.test_client(), current_app.config["CRM_API_KEY"] or ""),
                                    probes, report)
    finally:
        timing.setLevel(level)
    return report


@click.command("sync-convex")
@click.option("--batch", type=click.IntRange(1, 5000), default=200, show_default=True,
              help="Contacts per import request.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_STATE,
              show_default=True, help="Where progress is kept, so a killed run resumes.")
@click.option("--restart", is_flag=True, help="Ignore a previous run's progress and send everything again.")
@click.option("--clear", is_flag=True, help="Empty the Convex deployment first (implies --restart).")
@click.option("--samples", type=click.IntRange(0), default=200, show_default=True,
              help="Contacts looked up through both routes afterwards.")
@click.option("--follow", "following", is_flag=True,
              help="Copy, then keep Convex equal to PostgreSQL change by change until stopped.")
@click.option("--status", "show_status", is_flag=True,
              help="Print the follower's lag and backlog as JSON; exit 0 only while it keeps up.")
@click.option("--capture", type=click.Choice(["on", "off"]),
              help="Switch change capture on, or off (which empties the outbox).")
@with_appcontext
def sync_convex_command(batch: int, state_path: Path, restart: bool, clear: bool, samples: int,
                        following: bool, show_status: bool, capture: str | None) -> None:
    """Copy every workspace and contact (notes, conversation, messages) from PostgreSQL into the Convex
    deployment at CONVEX_SITE_URL in batches, resumably, then verify counts and sampled lookups.
    With --follow, keep it equal afterwards (docs/own-data.md §6)."""
    config = current_app.config
    if show_status or capture:
        _capture_or_status(config, capture)
        return
    if following:
        _follow(config, batch)
        return
    admin = ConvexAdmin(config["CONVEX_SITE_URL"], config["CRM_API_KEY"] or "")
    source = connection_label(config["DATABASE_URL"], config["DATABASE_SCHEMA"])
    if config["CONVEX_IS_STANDIN"]:
        click.echo("Convex: the local stand-in (convex-test in memory), not a Convex deployment")
    with _connect(config) as conn:
        fresh = postgres_to_convex.SyncState(state_path, source, config["CONVEX_SITE_URL"])
        state = fresh if restart or clear else postgres_to_convex.SyncState.load(state_path, source,
                                                                          config["CONVEX_SITE_URL"])
        try:
            if clear:
                click.echo(f"cleared Convex: {admin.clear():,} documents")
            if state.resumed:
                click.echo(f"resuming after {state.contacts:,} contacts already acknowledged")
            result = _copy(conn, admin, state, batch)
            click.echo(f"synced {result.contacts:,} contacts, {result.rows:,} rows in {result.seconds:.1f} s "
                       f"({result.rows_per_s:,.0f} rows/s)")
            for line in result.refused:
                click.echo(line)
            # Keys per workspace (docs/contract.md §13): their hashes and revocations, never a key.
            keys = workspace_keys.list_keys(conn)
            sent = workspace_keys.push_to_convex(config["CONVEX_SITE_URL"], config["CRM_API_KEY"], keys) if keys else 0
            click.echo(f"synced {sent:,} workspace key hash(es), {sum(k.revoked_at is None for k in keys):,} active")
            report = _verify(conn, admin, samples)
        except ApiError as error:
            raise click.ClickException(f"{error} (progress kept in {state_path}; run again to resume)") from None
    for line in report.lines:
        click.echo(line)
    if result.refused:
        report.mismatches.append(f"{result.refused_rows:,} row(s) Convex cannot hold were not copied (listed above)")
    if not report.ok:
        for line in report.mismatches:
            click.echo(f"MISMATCH {line}")
        click.echo(f"verification FAILED: {len(report.mismatches)} mismatch(es)", err=True)
        sys.exit(1)
    click.echo("verification: PASS")


def _capture_or_status(config: dict[str, Any], switch: str | None) -> None:
    with _connect(config) as conn, scoped(conn, config):
        if switch is not None:
            try:
                if switch == "on":
                    capture.capture_on(conn)
                    click.echo("change capture: on")
                else:
                    click.echo(f"change capture: off ({capture.capture_off(conn):,} waiting change(s) dropped)")
            except capture.CaptureRefused as error:
                raise click.ClickException(str(error)) from None
            return
        report = capture.status(conn)
    click.echo(json.dumps(report))
    sys.exit(0 if report["status"] == "ready" else 1)


def _follow(config: dict[str, Any], batch: int) -> None:
    """Follow until SIGTERM or SIGINT; a configuration it cannot follow ends it at once (exit 2)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    follow.log.addHandler(handler)
    follow.log.setLevel(logging.INFO)
    follow.log.propagate = False
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    admin = ConvexAdmin(config["CONVEX_SITE_URL"], config["CRM_API_KEY"] or "", timeout=60)
    follower = follow.Follower(lambda: _connect(config), config, admin, batch=batch, stop=stop)
    try:
        follower.start()
    except (click.ClickException, capture.CaptureRefused, ConvexRefused, ApiError) as error:
        message = error.format_message() if isinstance(error, click.ClickException) else str(error)
        click.echo(f"kontak: sync-convex --follow: {message}", err=True)
        sys.exit(2)
    follower.run()


def init_app(app: Flask) -> None:
    app.cli.add_command(sync_convex_command)
