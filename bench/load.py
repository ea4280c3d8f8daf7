"""Load benchmark: 60 s at concurrency 32 on each lookup route, against a real gunicorn.

`.venv/bin/python -m bench.load` starts a durable embedded PostgreSQL and the
local Convex stand-in, loads contract/demo_data.json into both, serves Kontak
with gunicorn at the defaults of gunicorn.conf.py (2 gthread workers x 4
threads), and drives each route with `hey` (Debian's package; installed with
apt-get when missing and run as root). The two routes are alternated in
slices (6 x 10 s each, ABBAAB...), so whatever drifts on this machine hits
both. Results: bench/results/load-<date>-<host>.{json,md}.

The Convex side is the local stand-in (convex-test in a Node process on
loopback): its latency and throughput are not Convex's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import requests

from bench.data import durable_postgres
from bench.measure import ensure_debian_tool, parse_options
from services.convex.admin import ConvexAdmin
from tools.convex_standin import ConvexStandin
from tools.servers import GunicornServer, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
API_KEY = "bench-load-key"
WORKSPACE = "00000000-0000-4000-8000-000000000001"
PHONE = "+6281234567890"  # Budi Santoso in the demo data: a full "found" lookup
ROUTES = {"supabase": "/api/contacts/by-phone", "convex": "/api/contacts/by-phone-convex"}
TIMING = re.compile(r"^timing route=\S+ backend=(\w+) method=\S+ status=(\d+) ", re.M)


def ensure_hey() -> str:
    return ensure_debian_tool("hey")


def parse_hey(output: str) -> dict:
    """hey's summary: wall time, latency percentiles, status codes and transport errors."""
    def number(pattern: str) -> float:
        match = re.search(pattern, output)
        if match is None:
            raise ValueError(f"hey output without {pattern!r}:\n{output}")
        return float(match.group(1))

    statuses = {int(code): int(n) for code, n in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", output, re.M)}
    errors_part = output.split("Error distribution:", 1)[1] if "Error distribution:" in output else ""
    errors = {text.strip(): int(n) for n, text in re.findall(r"^\s+\[(\d+)\]\s+(.+)$", errors_part, re.M)}
    return {
        "seconds": number(r"Total:\s+([\d.]+) secs"),
        "p50_ms": number(r"50% in ([\d.]+) secs") * 1000,
        "p99_ms": number(r"99% in ([\d.]+) secs") * 1000,
        "statuses": statuses,
        "errors": errors,
    }


def run_slice(hey: str, url: str, seconds: int, concurrency: int) -> dict:
    result = subprocess.run(
        [hey, "-z", f"{seconds}s", "-c", str(concurrency), "-t", "10", "-H", f"x-api-key: {API_KEY}", url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    return parse_hey(result.stdout)


def summarise(slices: list[dict]) -> dict:
    responses = sum(sum(s["statuses"].values()) for s in slices)
    seconds = sum(s["seconds"] for s in slices)
    return {
        "seconds": round(seconds, 1),
        "responses": responses,
        "requests_per_second": round(responses / seconds, 1),
        # hey reports percentiles per slice; the figure is their median over the slices.
        "p50_ms": round(statistics.median(s["p50_ms"] for s in slices), 2),
        "p99_ms": round(statistics.median(s["p99_ms"] for s in slices), 2),
        "worst_slice_p99_ms": round(max(s["p99_ms"] for s in slices), 2),
        "non_2xx": sum(n for s in slices for code, n in s["statuses"].items() if not 200 <= code < 300),
        "transport_errors": sum(n for s in slices for n in s["errors"].values()),
        "slices": [{"seconds": s["seconds"], "responses": sum(s["statuses"].values()),
                    "p50_ms": round(s["p50_ms"], 2), "p99_ms": round(s["p99_ms"], 2),
                    "statuses": s["statuses"], "errors": s["errors"]} for s in slices],
    }


def main() -> None:
    args = parse_options(__doc__.splitlines()[0], slices=6, slice_seconds=10, concurrency=32)
    hey = ensure_hey()
    load_before = os.getloadavg()[0]
    dataset = json.loads((ROOT / "contract" / "demo_data.json").read_text(encoding="utf-8"))
    query = urlencode({"phone": PHONE, "workspace_id": WORKSPACE})
    with durable_postgres(dataset) as (tmp, postgres):
        standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin.log")
        server = None
        try:
            standin.start()
            ConvexAdmin(standin.url, API_KEY).import_dataset(dataset)
            # GunicornServer's 2 workers x 4 threads are gunicorn.conf.py's defaults; no pool settings either.
            server = GunicornServer({"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY,
                                     "CONVEX_SITE_URL": standin.url}, tmp / "gunicorn.log")
            urls = {backend: f"{server.url}{route}?{query}" for backend, route in ROUTES.items()}
            answers = [requests.get(url, headers={"x-api-key": API_KEY}, timeout=10) for url in urls.values()]
            assert all(a.status_code == 200 and a.json()["found"] for a in answers), "both routes find the contact"
            assert answers[0].json() == answers[1].json(), "both routes answer the same JSON"
            for url in urls.values():  # warm-up: connections, prepared statements, the stand-in's JIT
                run_slice(hey, url, 3, args.concurrency)

            slices: dict[str, list[dict]] = {backend: [] for backend in ROUTES}
            for i in range(args.slices):
                order = list(ROUTES) if i % 2 == 0 else list(reversed(ROUTES))
                for backend in order:
                    result = run_slice(hey, urls[backend], args.slice_seconds, args.concurrency)
                    slices[backend].append(result)
                    print(f"slice {i + 1}/{args.slices} {backend:>8}: "
                          f"{sum(result['statuses'].values()) / result['seconds']:7.1f} req/s, "
                          f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
                          f"statuses {result['statuses']}, errors {sum(result['errors'].values())}", flush=True)
            log = server.log()
        finally:
            if server is not None:
                server.stop()
            standin.stop()
    server_side = {backend: {} for backend in ROUTES}
    for backend, status in TIMING.findall(log):
        server_side[backend][status] = server_side[backend].get(status, 0) + 1
    routes = {backend: {"route": ROUTES[backend], **summarise(runs), "timing_lines_by_status": server_side[backend]}
              for backend, runs in slices.items()}
    routes["supabase"]["tracebacks_in_log"] = log.count("Traceback")
    # Other work on this machine skews every figure: say how busy it was.
    args.load_average = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (1-minute)"
    write_results(routes, args)
    if routes["supabase"]["non_2xx"] or routes["supabase"]["transport_errors"]:
        raise SystemExit("the PostgreSQL route had failures: see the result file")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), shared and noisy"


def write_results(routes: dict, args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"load-{date.today().isoformat()}-{platform.node()}"
    setup = {
        "tool": "hey (Debian), keep-alive, one fixed found lookup (Budi Santoso, demo data)",
        "concurrency": args.concurrency,
        "slices": f"{args.slices} x {args.slice_seconds} s per route, alternated (ABBAAB...), after a 3 s warm-up each",
        "gunicorn": "gunicorn.conf.py defaults: 2 gthread workers x 4 threads; pool 1..4 connections per worker",
        "postgres": "embedded PostgreSQL on loopback, fsync on",
        "convex": "the LOCAL STAND-IN (convex-test in Node on loopback): its latency is not Convex's",
        "machine": machine(),
        "load_average": args.load_average,
        "percentiles": "hey reports them per slice; p50/p99 are the medians over the slices",
    }
    stem.with_suffix(".json").write_text(json.dumps({"load": routes, "setup": setup}, indent=2) + "\n")
    lines = [
        f"# Load: {args.slices * args.slice_seconds} s at concurrency {args.concurrency} on each lookup route",
        "",
        "**The Convex figures are the local stand-in's** (the project's Convex functions in convex-test, "
        "in a Node process on loopback): they say nothing about Convex's own latency or throughput.",
        "",
        "| route | backend | requests/s | p50 ms | p99 ms | worst slice p99 ms | responses | non-2xx "
        "| transport errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, r in routes.items():
        name = "PostgreSQL (embedded)" if backend == "supabase" else "Convex **stand-in**"
        lines.append(f"| `{r['route']}` | {name} | {r['requests_per_second']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['worst_slice_p99_ms']} | {r['responses']} | {r['non_2xx']} | {r['transport_errors']} |")
    lines += ["", "Setup:", ""] + [f"- {key}: {value}" for key, value in setup.items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
