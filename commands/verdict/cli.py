"""`flask --app app verdict LOG [--chart FILE] [--json FILE]` (docs/contract.md §15): both backends'
times on the same shadowed requests, their ratios with paired bootstrap intervals, the mismatch rate, a
chart, and one sentence of verdict when the p50 interval excludes 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask

from commands.compare.report import text_table
from commands.verdict.chart import draw_verdict_chart
from commands.verdict.lines import read_shadow_lines
from commands.verdict.stats import verdict_report


def _fail(message: str) -> None:
    click.echo(f"verdict: {message}", err=True)
    sys.exit(1)


def _read(log: str) -> tuple[list, dict[str, int]]:
    if log == "-":
        return read_shadow_lines(sys.stdin)
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            return read_shadow_lines(handle)
    except OSError as error:
        # One line, whatever the cause: the path and the operating system's reason.
        _fail(f"cannot read {log}: {error.strerror or type(error).__name__}")
        raise  # unreachable: _fail exits


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def report_lines(report: dict[str, Any]) -> list[str]:
    """What the command prints, in order (tests read the same)."""
    rows = [[backend, stats["count"], stats["p50"], stats["p95"], stats["p99"]]
            for backend, stats in report["backends"].items()]
    out = [f"shadow pairs: {report['pairs']} timed on both backends "
           f"(primary supabase {report['by_primary']['supabase']}, primary convex {report['by_primary']['convex']})",
           text_table(["backend", "n", "p50", "p95", "p99"], rows) + "\n(milliseconds of backend time, same requests)"]
    for label, ratio in report["ratio_convex_over_supabase"].items():
        out.append(f"convex / supabase {label}: {ratio['ratio']:.2f} "
                   f"(95% CI {ratio['ci_low']:.2f}-{ratio['ci_high']:.2f}, paired bootstrap)")
    o = report["outcomes"]
    out.append(f"compared {o['compared']}: match {o['match']}, mismatch {o['mismatch']} "
               f"(mismatch rate {_rate(o['mismatch_rate'])}), lag {o['lag']} (lag rate {_rate(o['lag_rate'])}, "
               f"the follower behind, not a difference); error {o['error']}, dropped {o['dropped']}")
    if report["mismatch_fields"]:
        out.append("fields that differed: " + ", ".join(f"{k} {v}" for k, v in report["mismatch_fields"].items()))
    out.append(report["verdict"])
    return out


@click.command("verdict")
@click.argument("log", default="-")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/verdict.png"), show_default=True, help="Where to write the chart (PNG).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures (and every pair's times) as JSON.")
def verdict_command(log: str, chart_path: Path, json_path: Path | None) -> None:
    """Read the docs/contract.md §15 shadow lines of a gunicorn log (file, or - for stdin; other lines
    are ignored) and print each backend's p50/p95/p99 on the same requests, the convex/supabase ratio
    of each with a paired bootstrap 95% interval, the mismatch and lag rates, and a verdict only when
    the p50 interval excludes 1."""
    lines, fields = _read(log)
    if not lines:
        _fail(f"no shadow lines in {log} (is SHADOW_SAMPLE above 0 on the server?)")
    report = verdict_report(lines, fields)
    for line in report_lines(report):
        click.echo(line)
    if report["pairs"]:
        draw_verdict_chart(report["times_ms"], chart_path,
                           report["verdict"])
        click.echo(f"wrote {chart_path}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


def init_app(app: Flask) -> None:
    app.cli.add_command(verdict_command)
