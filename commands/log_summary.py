"""`flask --app app log-summary`: the comparison from a gunicorn log alone (rows from commands/timing_report.py)."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask

from commands.tables import text_table
from commands.timing_report import parse_time, timing_rows

HEADERS = ["backend", "route", "status", "count", "total p50", "p90", "p95", "p99", "max",
           "backend p50", "p90", "p95", "p99", "max", "queries"]


def _table_rows(rows: list[dict]) -> list[list[object]]:
    table = []
    for row in rows:
        total, backend = row["total_ms"], row["backend_ms"]
        table.append([row["backend"], row["route"], row["status"], total["count"],
                     *(total[k] for k in ("p50", "p90", "p95", "p99", "max")),
                     *(backend[k] for k in ("p50", "p90", "p95", "p99", "max")), row["mean_queries"]])
    return table


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
    backend_ms (ms) and the mean number of queries. Other lines are ignored."""
    rows = timing_rows(log, _when(since), _when(until), request_id_prefix)
    if not rows:
        click.echo("no timing lines found", err=True)
        sys.exit(1)
    click.echo(text_table(HEADERS, _table_rows(rows)))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


def init_app(app: Flask) -> None:
    app.cli.add_command(log_summary_command)
