"""`flask --app app seed | compare | log-summary`: one synthetic data set into both backends, both
lookup routes compared on it (parity first, then timed side by side), and the comparison read back
from a gunicorn log alone."""

from __future__ import annotations

import json
import random
import string
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import click
import psycopg
import requests
from flask import Flask, current_app
from flask.cli import with_appcontext
from psycopg import sql
from tqdm import tqdm

from commands.compare import synthetic
from commands.compare.probes import Probe, probes_from_db, sample_probes
from commands.compare.report import (
    COMPARE_HEADERS,
    LOG_SUMMARY_HEADERS,
    STANDIN_NOTE,
    aggregate_latencies,
    compare_rows,
    log_summary_rows,
    ratio_lines,
    text_table,
    write_reports,
)
from commands.compare.side_by_side import Client, check_parity, measure
from commands.compare.timing_lines import parse_time, shadow_rows, timing_rows
from commands.connection import first_line
from services.convex.admin import ConvexAdmin
from services.errors import ApiError
from services.postgres.bulk import copy_contacts, empty_all, replace_workspaces
from services.postgres.migrations import upgrade

# --- seed ---------------------------------------------------------------------------------------------------------

CONVEX_BATCH = 200  # contacts per import request; the import splits further per mutation


def _report(name: str, rows: int, seconds: float) -> None:
    click.echo(f"{name}: {rows:,} rows in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")


def seed_postgres(seed: int, count: int, reset: bool) -> None:
    started = time.perf_counter()
    with psycopg.connect(current_app.config["DATABASE_URL"], autocommit=True) as conn:
        upgrade(conn, current_app.config["DATABASE_SCHEMA"])
        if reset:
            empty_all(conn)
        replace_workspaces(conn, synthetic.workspaces(seed))
        with tqdm(total=count, unit=" contacts", desc="PostgreSQL") as bar:
            totals = copy_contacts(conn, synthetic.contacts(seed, count),
                                   on_chunk=lambda counts: bar.update(counts["contacts"]))
        conn.execute("ANALYZE")
    _report("PostgreSQL", sum(totals.values()) + synthetic.WORKSPACE_COUNT, time.perf_counter() - started)


def seed_convex(seed: int, count: int, reset: bool) -> None:
    config = current_app.config
    admin = ConvexAdmin(config["CONVEX_SITE_URL"], config["CRM_API_KEY"] or "")
    if config["CONVEX_IS_STANDIN"]:
        click.echo("Convex: the local stand-in (convex-test in memory), not a Convex deployment")
    started, rows = time.perf_counter(), 0
    if reset:
        admin.clear()
    workspaces = synthetic.workspaces(seed)
    records = synthetic.contacts(seed, count)
    with tqdm(total=count, unit=" contacts", desc="Convex") as bar:
        while batch := list(islice(records, CONVEX_BATCH)):
            counts = admin.import_dataset({"workspaces": workspaces, "contacts": batch})
            rows += sum(counts.values())
            bar.update(len(batch))
        if count == 0:
            rows += sum(admin.import_dataset({"workspaces": workspaces, "contacts": []}).values())
    _report("Convex", rows, time.perf_counter() - started)


@click.command("seed")
@click.option("--seed", "seed", type=int, default=synthetic.DEFAULT_SEED, show_default=True,
              help="Random seed: the same seed and size give the same data.")
@click.option("--contacts", "count", type=click.IntRange(0, 10_000_000), default=10_000, show_default=True,
              help="How many contacts to generate.")
@click.option("--reset", is_flag=True, help="Empty both backends first.")
@click.option("--backend", type=click.Choice(["both", "postgres", "convex"]), default="both", show_default=True,
              help="Which backends to load.")
@with_appcontext
def seed_command(seed: int, count: int, reset: bool, backend: str) -> None:
    """Generate a deterministic CRM data set and load it into PostgreSQL (COPY)
    and Convex (the batched import), with a progress bar each."""
    try:
        if backend in ("both", "postgres"):
            seed_postgres(seed, count, reset)
        if backend in ("both", "convex"):
            seed_convex(seed, count, reset)
    except (ApiError, psycopg.OperationalError) as error:
        raise click.ClickException(str(error)) from None
    ids = synthetic.workspace_ids(seed)
    click.echo(f"workspaces: {', '.join(ids)}")



# --- compare ------------------------------------------------------------------------------------------------------


def _db_probes(config: dict[str, Any], count: int) -> list[Probe]:
    try:
        with psycopg.connect(config["DATABASE_URL"], autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(config["DATABASE_SCHEMA"])))
            return probes_from_db(conn, count, config["DEFAULT_REGION"])
    except psycopg.Error as error:
        raise click.ClickException(f"cannot sample PostgreSQL: {first_line(error)}") from None


def _require_parity(base: str, key: str, probes: list[Probe]) -> None:
    """Both routes answer every probe alike, or the differences are printed and the command exits 1."""
    if not any(p.label.startswith("found/") for p in probes):
        raise click.ClickException("no contact to probe: PostgreSQL holds none")
    try:
        differences = check_parity(Client(base, key), probes)
    except requests.RequestException as error:
        raise click.ClickException(f"cannot reach Kontak at {base}: {type(error).__name__}") from None
    if differences:
        click.echo("\n\n".join(differences))
        click.echo(f"\nPARITY FAILED: {len(differences)} of {len(probes)} requests differ; no verdict.", err=True)
        sys.exit(1)
    click.echo(f"parity: PASS ({len(probes)} requests, equal status and JSON on both routes)")


def _show(report: dict[str, Any]) -> None:
    click.echo(text_table(COMPARE_HEADERS, compare_rows(report)) + "\n(milliseconds; server = Server-Timing)")
    for line in ratio_lines(report):
        click.echo(line)


@click.command("compare")
@click.option("--url", help="A running Kontak. [default: http://127.0.0.1:$PORT]")
@click.option("--seed", "seed", type=int, default=synthetic.DEFAULT_SEED, show_default=True,
              help="The seed the data set was made with.")
@click.option("--contacts", type=click.IntRange(1), default=10_000, show_default=True,
              help="The size the data set was made with.")
@click.option("--samples", type=click.IntRange(1), default=40, show_default=True,
              help="Contacts sampled for the parity check (each in every phone form, or by its BSUID).")
@click.option("--probes-from-db", "from_db", type=click.IntRange(1), default=None,
              help="Sample this many contacts from PostgreSQL (real data) instead of the synthetic seed.")
@click.option("--requests", "requests_per_route", type=click.IntRange(1), default=1000, show_default=True,
              help="Timed requests per route.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("--warmup", type=click.IntRange(0), default=100, show_default=True, help="Untimed requests first.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/compare.json"), show_default=True)
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/compare.md"), show_default=True)
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/compare.png"), show_default=True)
@with_appcontext
def compare_command(url, seed, contacts, samples, from_db, requests_per_route, concurrency, warmup,
                    json_path, markdown_path, chart_path) -> None:
    """Check that both lookup routes answer identically on the seeded data, then
    time them interleaved and report percentiles, the server-side split and
    the convex/supabase ratio with a bootstrap 95% confidence interval."""
    config = current_app.config
    base = url or f"http://127.0.0.1:{config['PORT']}"
    key = config["CRM_API_KEY"] or ""
    standin = bool(config["CONVEX_IS_STANDIN"])
    if standin:
        click.echo(STANDIN_NOTE)
    probes = _db_probes(config, from_db) if from_db else sample_probes(seed, contacts, samples,
                                                                         config["DEFAULT_REGION"])
    _require_parity(base, key, probes)
    # Letters only: a request id holding a run of digits is refused as phone-like (hooks/timing.py).
    run_id = "cmp" + "".join(random.choices(string.ascii_lowercase, k=8))
    results = measure(lambda: Client(base, key), probes, requests_per_route, concurrency, warmup, run_id)
    source = {"probes_from": "postgres", "sampled_contacts": from_db} if from_db else {
        "probes_from": "seed", "seed": seed, "contacts": contacts}
    report = {"url": base, "convex_is_standin": standin, **source,
              "parity": {"checked": len(probes), "differences": 0}, "requests_per_route": requests_per_route,
              "concurrency": concurrency, "warmup": warmup, "request_id_prefix": f"{run_id}-t",
              **aggregate_latencies(results)}
    _show(report)
    write_reports(report, results, json_path, markdown_path, chart_path)
    click.echo(f"wrote {json_path}, {markdown_path}, {chart_path}")
    click.echo(f"the same requests in the server log: flask --app app log-summary --request-id {run_id}-t LOG")


# --- log-summary --------------------------------------------------------------------------------------------------


def _when(value: str | None) -> object:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 time: {value!r}") from None


@click.command("log-summary")
@click.argument("log", type=click.File("r", encoding="utf-8", errors="replace"), default="-")
@click.option("--since", help="Only lines at or after this ISO-8601 time (lines must carry a time).")
@click.option("--until", help="Only lines at or before this ISO-8601 time.")
@click.option("--request-id", "request_id_prefix", default="",
              help="Only requests whose X-Request-ID starts with this (compare prints its own).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the table as JSON.")
def log_summary_command(log, since: str | None, until: str | None, request_id_prefix: str,
                        json_path: str | None) -> None:
    """Summarise the docs/contract.md §6 timing lines of a gunicorn log (file or stdin):
    per backend, route and status class, the percentiles of total_ms and
    backend_ms (ms) and the mean number of queries; then the §15 shadow lines: both backends on
    the same shadowed requests. Other lines are ignored."""
    lines = list(log)  # read twice: the timing lines, then the shadow lines
    rows = timing_rows(lines, _when(since), _when(until), request_id_prefix)
    shadow = shadow_rows(lines, _when(since), _when(until), request_id_prefix)
    if not rows and shadow is None:
        click.echo("no timing lines found", err=True)
        sys.exit(1)
    if rows:
        click.echo(text_table(LOG_SUMMARY_HEADERS, log_summary_rows(rows)))
    if shadow is not None:
        click.echo("\nshadowed requests, both backends on the same lookups (backend time, ms; docs/contract.md §15):")
        click.echo(text_table(["backend", "count", "p50", "p95"],
                              [[b["backend"], b["count"], b["p50"], b["p95"]] for b in shadow["backends"]]))
        click.echo("pairs by result: " + ", ".join(f"{name} {n}" for name, n in shadow["results"].items())
                   + " (flask --app app verdict LOG for the ratios and the verdict)")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(compare_command)
    app.cli.add_command(log_summary_command)
