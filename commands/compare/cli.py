"""`flask --app app compare`: parity first, then both routes timed side by side."""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path
from typing import Any

import click
import psycopg
import requests
from flask import Flask, current_app
from flask.cli import with_appcontext
from psycopg import sql

from commands import synthetic
from commands.comparison import ROUTES, Client, Probe, Samples, check_parity, measure, probes_from_db, sample_probes
from commands.latency import describe, ratio_with_ci, verdict
from commands.tables import markdown_table, text_table

HEADERS = ["route", "count", "errors", "p50", "p90", "p95", "p99", "max", "mean",
           "server backend p50", "server app p50", "server backend p95", "server app p95"]
STANDIN_NOTE = ("The Convex side is the local stand-in (convex-test in memory on loopback): "
                "its latency is not Convex's.")


def aggregate_latencies(results: dict[str, Samples]) -> dict[str, Any]:
    routes = {}
    for name, samples in results.items():
        routes[name] = {"route": ROUTES[name], "errors": samples.errors, "client_ms": describe(samples.latency_ms),
                        "server_backend_ms": describe(samples.server_backend_ms),
                        "server_app_ms": describe(samples.server_app_ms)}
    aggregate: dict[str, Any] = {"routes": routes, "ratio_convex_over_supabase": {}, "verdicts": []}
    a, b = results["convex"].latency_ms, results["supabase"].latency_ms
    if a and b:
        for label, p in (("p50", 50), ("p95", 95)):
            ratio = ratio_with_ci(a, b, p)
            aggregate["ratio_convex_over_supabase"][label] = ratio
            line = verdict("by-phone-convex", "by-phone", ratio, label)
            if line:
                aggregate["verdicts"].append(line)
    return aggregate


def _rows(aggregate: dict[str, Any]) -> list[list[object]]:
    rows = []
    for route in aggregate["routes"].values():
        c, sb, sa = route["client_ms"], route["server_backend_ms"], route["server_app_ms"]
        rows.append([route["route"], c["count"], route["errors"], c["p50"], c["p90"], c["p95"], c["p99"], c["max"],
                     c["mean"], sb["p50"], sa["p50"], sb["p95"], sa["p95"]])
    return rows


def _ratio_lines(aggregate: dict[str, Any]) -> list[str]:
    lines = [f"convex / supabase {label}: {r['ratio']:.2f} (95% CI {r['ci_low']:.2f}-{r['ci_high']:.2f})"
             for label, r in aggregate["ratio_convex_over_supabase"].items()]
    return lines + (aggregate["verdicts"] or ["no verdict: the 95% intervals include 1"])


def draw_chart(results: dict[str, Samples], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"supabase": "#3ecf8e", "convex": "#ee342f"}
    everything = np.concatenate([np.asarray(s.latency_ms) for s in results.values() if s.latency_ms])
    bins = np.geomspace(max(everything.min(), 0.01), everything.max(), 60)
    for name, samples in results.items():
        values = np.sort(np.asarray(samples.latency_ms))
        if values.size == 0:
            continue
        label = f"{ROUTES[name]} (p50 {np.percentile(values, 50):.2f} ms)"
        hist.hist(values, bins=bins, histtype="stepfilled", alpha=0.45, color=colours[name], label=label)
        cdf.plot(values, np.arange(1, values.size + 1) / values.size, color=colours[name], label=ROUTES[name])
        for p, style in ((50, "--"), (95, ":")):
            cdf.axvline(np.percentile(values, p), color=colours[name], linestyle=style, linewidth=1)
    hist.set(xscale="log", xlabel="client latency (ms, log scale)", ylabel="requests", title="Distribution")
    cdf.set(xscale="log", xlabel="client latency (ms, log scale)", ylabel="fraction of requests",
            title="Cumulative (dashed p50, dotted p95)")
    hist.legend()
    cdf.legend(loc="lower right")
    cdf.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(report: dict[str, Any], results: dict[str, Samples], json_path: Path, markdown_path: Path,
                  chart_path: Path) -> None:
    for path in (json_path, markdown_path, chart_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    notes = [STANDIN_NOTE] if report["convex_is_standin"] else []
    markdown = [f"# Kontak compare ({report['requests_per_route']} requests per route, "
                f"concurrency {report['concurrency']})", "", *notes, "",
                markdown_table([h + (" (ms)" if i > 2 else "") for i, h in enumerate(HEADERS)], _rows(report)), "",
                *[f"- {line}" for line in _ratio_lines(report)], ""]
    markdown_path.write_text("\n".join(markdown))
    title = "by-phone (PostgreSQL) vs by-phone-convex" + (" — Convex = local stand-in, not Convex's latency"
                                                          if report["convex_is_standin"] else "")
    draw_chart(results, chart_path, title)


def _db_probes(config: dict[str, Any], count: int) -> list[Probe]:
    try:
        with psycopg.connect(config["DATABASE_URL"], autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(config["DATABASE_SCHEMA"])))
            return probes_from_db(conn, count, config["DEFAULT_REGION"])
    except psycopg.Error as error:
        raise click.ClickException(f"cannot sample PostgreSQL: {str(error).strip().splitlines()[0]}") from None


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
    # Letters only: a request id holding a run of digits is refused as phone-like (hooks/timing.py).
    run_id = "cmp" + "".join(random.choices(string.ascii_lowercase, k=8))
    results = measure(lambda: Client(base, key), probes, requests_per_route, concurrency, warmup, run_id)
    source = {"probes_from": "postgres", "sampled_contacts": from_db} if from_db else {
        "probes_from": "seed", "seed": seed, "contacts": contacts}
    report = {"url": base, "convex_is_standin": standin, **source,
              "parity": {"checked": len(probes), "differences": 0}, "requests_per_route": requests_per_route,
              "concurrency": concurrency, "warmup": warmup, "request_id_prefix": f"{run_id}-t",
              **aggregate_latencies(results)}
    click.echo(text_table(HEADERS, _rows(report)) + "\n(milliseconds; server = Server-Timing)")
    for line in _ratio_lines(report):
        click.echo(line)
    write_reports(report, results, json_path, markdown_path, chart_path)
    click.echo(f"wrote {json_path}, {markdown_path}, {chart_path}")
    click.echo(f"the same requests in the server log: flask --app app log-summary --request-id {run_id}-t LOG")


def init_app(app: Flask) -> None:
    app.cli.add_command(compare_command)
