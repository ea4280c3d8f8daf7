"""What compare and log-summary show and write: aligned text tables for the terminal, Markdown for
files, compare's ratios with their verdicts, its chart (matplotlib), and its report files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from commands.compare.latency import describe, ratio_with_ci, verdict
from commands.compare.side_by_side import ROUTES, Samples

COMPARE_HEADERS = ["route", "count", "errors", "p50", "p90", "p95", "p99", "max", "mean",
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


def compare_rows(aggregate: dict[str, Any]) -> list[list[object]]:
    rows = []
    for route in aggregate["routes"].values():
        c, sb, sa = route["client_ms"], route["server_backend_ms"], route["server_app_ms"]
        rows.append([route["route"], c["count"], route["errors"], c["p50"], c["p90"], c["p95"], c["p99"], c["max"],
                     c["mean"], sb["p50"], sa["p50"], sb["p95"], sa["p95"]])
    return rows


def ratio_lines(aggregate: dict[str, Any]) -> list[str]:
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
                markdown_table([h + (" (ms)" if i > 2 else "") for i, h in enumerate(COMPARE_HEADERS)],
                               compare_rows(report)), "",
                *[f"- {line}" for line in ratio_lines(report)], ""]
    markdown_path.write_text("\n".join(markdown))
    title = "by-phone (PostgreSQL) vs by-phone-convex" + (" — Convex = local stand-in, not Convex's latency"
                                                          if report["convex_is_standin"] else "")
    draw_chart(results, chart_path, title)


LOG_SUMMARY_HEADERS = ["backend", "route", "status", "count", "total p50", "p90", "p95", "p99", "max",
           "backend p50", "p90", "p95", "p99", "max", "queries"]


def log_summary_rows(rows: list[dict]) -> list[list[object]]:
    table = []
    for row in rows:
        total, backend = row["total_ms"], row["backend_ms"]
        table.append([row["backend"], row["route"], row["status"], total["count"],
                     *(total[k] for k in ("p50", "p90", "p95", "p99", "max")),
                     *(backend[k] for k in ("p50", "p90", "p95", "p99", "max")), row["mean_queries"]])
    return table


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "  ".join(v.rjust(w) if i else v.ljust(w)  # noqa: E731
                                    for i, (v, w) in enumerate(zip(values, widths, strict=True)))
    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
