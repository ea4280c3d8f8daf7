"""Shadow lookups' cost to the primary (docs/contract.md §15), for `make bench`.

- `shadow_p50_ratio`: GET /api/contacts/by-phone p50 on a gunicorn with SHADOW_SAMPLE=1 (every answered
  lookup also asked of the Convex stand-in, after the answer) ÷ on a gunicorn with SHADOW_SAMPLE=0, the two
  alternated request by request on one keep-alive connection each (bench/figures.py `alternated_p50s`),
  the same contacts, both servers on the same PostgreSQL database and stand-in holding the same demo data
  (so the pairs match). The figure is the median over rounds of the per-round ratio. Goal: ≤ 1.05.
  The same for by-phone-convex (its shadow is PostgreSQL) is reported beside it, with the pairs each
  server compared and dropped (from its shadow lines: sent − logged).

`python -m bench.shadow` (or `python -m bench.run --only shadow`) measures it on a throwaway embedded
PostgreSQL and writes bench/results/shadow-<date>-<host>.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.data import bench_cluster, database_url, prepare_database
from bench.figures import alternated_p50s, keep_alive
from bench.measure import API_KEY, BY_PHONE, BY_PHONE_CONVEX, Gunicorn, lookup_path, summarize_rounds, warm_up
from services.config import PROJECT_ROOT
from services.convex.admin import ConvexAdmin
from tools.convex_standin import ConvexStandin
from tools.servers import free_port

FIGURES = [("shadow_p50_ratio", "by-phone p50 with SHADOW_SAMPLE=1 (every lookup shadowed on Convex) ÷ with 0",
            "<=", 1.05, "")]
RESULTS = Path(__file__).resolve().parent / "results"
ROUNDS, PER_ROUND = 9, 200
_RESULT = re.compile(r"^shadow route=\S+ primary=(\S+) .* result=(\S+) ", re.M)


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _shadow_results(server: Gunicorn) -> dict[str, dict[str, int]]:
    """Per primary, the results of the shadow lines `server` logged."""
    counts: dict[str, dict[str, int]] = {}
    for primary, result in _RESULT.findall(server.log()):
        counts.setdefault(primary, {}).setdefault(result, 0)
        counts[primary][result] += 1
    return counts


def _alternated(off: Gunicorn, on: Gunicorn, route: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    batch = [(lookup_path(route, ws, phone), lookup_path(route, ws, phone))
             for ws, phone in (targets[i % len(targets)] for i in range(PER_ROUND))]
    with keep_alive(off.url, on.url) as clients:
        p50s = alternated_p50s(*clients, [batch] * ROUNDS, same_answer=True)
    rounds = [{"off_p50_ms": a, "on_p50_ms": b, "ratio": b / a} for a, b in p50s]
    return summarize_rounds(rounds, PER_ROUND)


def measure(admin_url: str, tmp: Path) -> dict[str, Any]:
    """Both routes, shadow on ÷ off; the servers and the stand-in are this function's own."""
    demo = json.loads((PROJECT_ROOT / "contract" / "demo_data.json").read_text())
    url = database_url(admin_url, "bench_shadow")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench_shadow")
    prepare_database(url, demo)
    targets = [(c["workspace_id"], c["phone"]) for c in demo["contacts"]]
    standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin-shadow.log")
    servers: list[Gunicorn] = []
    try:
        standin.start()
        ConvexAdmin(standin.url, API_KEY).import_dataset(demo)
        env = {"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url, "DATABASE_URL": url}
        off = Gunicorn({**env, "SHADOW_SAMPLE": "0"}, tmp / "gunicorn-shadow-off.log")
        servers.append(off)
        on = Gunicorn({**env, "SHADOW_SAMPLE": "1"}, tmp / "gunicorn-shadow-on.log")
        servers.append(on)
        for server in servers:
            warm_up(server.url, [lookup_path(route, ws, ph) for ws, ph in targets * 40
                                 for route in (BY_PHONE, BY_PHONE_CONVEX)])
        log("shadow: by-phone, SHADOW_SAMPLE=1 vs 0, alternated")
        raw: dict[str, Any] = {"shadow_p50_ratio": _alternated(off, on, BY_PHONE, targets)}
        log("shadow: by-phone-convex, SHADOW_SAMPLE=1 vs 0, alternated")
        raw["convex_route_shadow_p50_ratio"] = _alternated(off, on, BY_PHONE_CONVEX, targets)
        sent = 2 * (ROUNDS * PER_ROUND + len(targets) * 40)  # per route: the rounds' and the warm-up's
        raw["pairs"] = {"lookups_on_the_shadowed_server": sent, "shadow_lines": _shadow_results(on),
                        "lines_of_the_unshadowed_server": sum(map(sum, map(dict.values,
                                                                            _shadow_results(off).values())))}
        return raw
    finally:
        for server in servers:
            server.stop()
        standin.stop()


def markdown(raw: dict[str, Any], setup: dict[str, Any]) -> str:
    pg, cx = raw["shadow_p50_ratio"], raw["convex_route_shadow_p50_ratio"]
    pm, cm = pg["median_of_rounds"], cx["median_of_rounds"]
    met = "yes" if pg["value"] <= FIGURES[0][3] else "**no**"
    lines = [f"# Shadow lookups, {setup['date']} on {setup['host']} ({setup['cpus']} CPUs)", "",
             "| figure | goal | measured | met |", "|---|---|---:|:---:|",
             f"| {FIGURES[0][1]} (`shadow_p50_ratio`) | ≤ {FIGURES[0][3]} | {pg['value']:.3f} | {met} |",
             f"| by-phone-convex p50 with SHADOW_SAMPLE=1 (shadowed on PostgreSQL) ÷ with 0 | reported | "
             f"{cx['value']:.3f} | — |", "",
             f"- by-phone p50: {pm['off_p50_ms']:.3f} ms off, {pm['on_p50_ms']:.3f} ms on; per-round ratios "
             f"{[r['ratio'] for r in pg['rounds']]}",
             f"- by-phone-convex p50: {cm['off_p50_ms']:.3f} ms off, {cm['on_p50_ms']:.3f} ms on; per-round ratios "
             f"{[r['ratio'] for r in cx['rounds']]}",
             f"- pairs: {raw['pairs']['lookups_on_the_shadowed_server']:,} lookups on the shadowed server, its "
             f"shadow lines by primary and result {raw['pairs']['shadow_lines']} (the rest dropped: queue full); "
             f"lines of the unshadowed server: {raw['pairs']['lines_of_the_unshadowed_server']}", "",
             f"Setup: {setup['setup']}. Whole run: {setup['duration_seconds']} s.", ""]
    return "\n".join(lines)


def run_figures() -> dict[str, Any]:
    started = time.perf_counter()
    with bench_cluster() as (tmp, _pg, admin_url):
        raw = measure(admin_url, tmp)
    setup = {"date": date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
             "duration_seconds": round(time.perf_counter() - started),
             "setup": f"embedded PostgreSQL (fsync off) and the local Convex stand-in, both holding the demo data; "
                      f"two gunicorns (Kontak's gunicorn.conf.py, 2 gevent workers each), one keep-alive "
                      f"http.client connection to each, requests alternated; {ROUNDS} rounds of {PER_ROUND} "
                      f"requests per side; the figure is the median over rounds of the per-round ratio. The "
                      f"stand-in is not Convex: its latency is not Convex's"}
    stem = RESULTS / f"shadow-{setup['date']}-{platform.node()}"
    stem.with_suffix(".json").write_text(json.dumps({"raw": raw, "setup": setup}, indent=2, ensure_ascii=False) + "\n")
    text = markdown(raw, setup)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote {stem.relative_to(PROJECT_ROOT)}.json and .md")
    return raw


if __name__ == "__main__":
    run_figures()
