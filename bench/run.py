"""Kontak's cost over its backend: every figure of the goal table in one run.

`make bench` (`.venv/bin/python -m bench.run`) starts a throwaway embedded
PostgreSQL with two databases (10,000 and 1,000,000 synthetic contacts), the
local Convex stand-in, and real gunicorn servers on loopback, then measures
each figure as a ratio inside this one run, its two sides alternated request
by request (or slice by slice for throughput), the figure being the median
over several rounds. Results: bench/results/<date>-<host>.{json,md,png}
(bench/report.py). The figures themselves: bench/figures.py (request path),
bench/throughput.py (under load), bench/keys.py, bench/ingest_cost.py, bench/sync.py, bench/follow.py.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import follow as follow_bench
from bench import ingest_cost, metrics_cost, original_pattern
from bench import keys as keys_bench
from bench import shadow as shadow_bench
from bench import sync as sync_bench
from bench.data import (
    SEED,
    bench_cluster,
    chunks,
    database_url,
    give_bsuids,
    missing_phones,
    sample_identities,
    sample_phones,
    seed_database,
)
from bench.figures import (
    count_round_trips,
    measure_bsuid,
    measure_convex_overhead,
    measure_floor_p50,
    measure_latency_pattern,
    measure_overhead,
    measure_scale,
)
from bench.measure import (
    API_KEY,
    BY_PHONE,
    BY_PHONE_CONVEX,
    FLOOR_BY_PHONE,
    FLOOR_CONVEX,
    Gunicorn,
    KeepAliveClient,
    ensure_wrk,
    lookup_path,
    warm_up,
)
from bench.proxies import DelayProxy
from bench.report import build_report, write_results
from bench.throughput import (
    count_convex_connections,
    measure_floor_throughput,
    measure_slow_clients,
    measure_throughput,
)
from services.config import PROJECT_ROOT
from services.convex.admin import ConvexAdmin
from tools.convex_standin import ConvexStandin
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

SYNC_CONTACTS = 100_000  # the stand-in figures are measured at this size


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# --- what every run starts ----------------------------------------------------------------------------


@contextmanager
def demo_standin(tmp: Path) -> Iterator[tuple[ConvexStandin, list[tuple[str, str]]]]:
    """The local stand-in holding the demo data set, and its contacts as (workspace, phone).

    The demo data set only: the stand-in (convex-test) scans its tables, so a bigger data set would
    only add stand-in time and noise to both sides of the Convex figures."""
    standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin.log")
    try:
        standin.start()
        demo = json.loads((PROJECT_ROOT / "contract" / "demo_data.json").read_text())
        ConvexAdmin(standin.url, API_KEY).import_dataset(demo)
        yield standin, [(c["workspace_id"], c["phone"]) for c in demo["contacts"]]
    finally:
        standin.stop()


@dataclass
class Run:
    """One run's servers, samples and figures (`raw`: each figure's whole measurement)."""

    args: argparse.Namespace
    tmp: Path
    pg: EmbeddedPostgres
    admin_url: str
    standin: ConvexStandin
    convex_targets: list[tuple[str, str]]
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    raw: dict[str, Any] = field(default_factory=dict)
    servers: list[Gunicorn] = field(default_factory=list)

    @property
    def small_url(self) -> str:
        return database_url(self.admin_url, "bench_10k")

    def env(self, url: str) -> dict[str, str]:
        return {"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": self.standin.url, "DATABASE_URL": url}

    def serve(self, url: str, log_name: str, app: str = "wsgi:app") -> Gunicorn:
        server = Gunicorn(self.env(url), self.tmp / log_name, app=app)
        self.servers.append(server)
        return server

    def stop_servers(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def phone_rounds(self, contacts: int, rounds: int, per_round: int | None = None) -> list[list[tuple[str, str]]]:
        """`rounds` batches of `per_round` (default --per-round) sampled contacts with a phone."""
        n = per_round or self.args.per_round
        return chunks(sample_phones(contacts, n * rounds, self.rng), n)

    def convex_rounds(self) -> list[list[tuple[str, str]]]:
        n = self.args.per_round
        return [[self.convex_targets[i % len(self.convex_targets)] for i in range(n)] for _ in range(self.args.rounds)]


# --- the figures, phase by phase ----------------------------------------------------------------------


def lookup_figures(run: Run, small: Gunicorn, large: Gunicorn, convex_phones: list[list[tuple[str, str]]]) -> None:
    args, raw, rng = run.args, run.raw, run.rng
    log("overhead: /healthz, raw SQL and by-phone, alternated")
    phones = run.phone_rounds(args.small, args.rounds + 1)
    warm_up(small.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in phones[0]] + ["/healthz"] * 50)
    raw["overhead_ratio"] = measure_overhead(small, run.small_url, phones)

    log("round trips: statement log of the database")
    client = KeepAliveClient(small.url, {"x-api-key": API_KEY})
    try:
        raw["round_trips"] = count_round_trips(run.pg, run.small_url,
                                               lambda ws, phone: client.get_ok(lookup_path(BY_PHONE, ws, phone))[1],
                                               sample_phones(args.small, 50, rng), missing_phones(50, rng))
    finally:
        client.close()

    log("scale: 10,000 vs 1,000,000 contacts, alternated")
    small_phones, large_phones = run.phone_rounds(args.small, args.rounds), run.phone_rounds(args.large, args.rounds)
    warm_up(large.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in sample_phones(args.large, 200, rng)])
    raw["scale_ratio"] = measure_scale(small, large, small_phones, large_phones)

    log("throughput: wrk at 32 connections, /healthz and by-phone slices alternated")
    raw["throughput_ratio"] = measure_throughput(ensure_wrk(), small, sample_phones(args.small, 2000, rng),
                                                 rounds=10, seconds=2)

    log("convex: direct HTTP action vs by-phone-convex, alternated")
    warm_up(small.url, [lookup_path(BY_PHONE_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
    raw["convex_proxy_overhead_ms"] = measure_convex_overhead(small, run.standin.url, convex_phones)


def floor_figures(run: Run, small: Gunicorn, floor: Gunicorn, convex_phones: list[list[tuple[str, str]]],
                  after_p50: Callable[[list[list[tuple[str, str]]]], None] | None = None) -> None:
    """The three floor figures; `after_p50(floor_phones)` runs between the first and the others."""
    raw = run.raw
    floor_phones = run.phone_rounds(run.args.small, run.args.rounds + 1)
    warm_up(floor.url, [lookup_path(FLOOR_BY_PHONE, ws, ph) for ws, ph in floor_phones[0]])
    warm_up(small.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in floor_phones[0]])
    raw["floor_p50_ratio"] = measure_floor_p50(small, floor, BY_PHONE, FLOOR_BY_PHONE, floor_phones[1:])
    log(f"floor_p50_ratio {raw['floor_p50_ratio']['value']:.3f} {raw['floor_p50_ratio']['median_of_rounds']}")
    if after_p50 is not None:
        after_p50(floor_phones)
    raw["floor_throughput_ratio"] = measure_floor_throughput(
        ensure_wrk(), small, floor, sample_phones(run.args.small, 2000, run.rng), rounds=10, seconds=2)
    log(f"floor_throughput_ratio {raw['floor_throughput_ratio']['value']:.3f} "
        f"{raw['floor_throughput_ratio']['median_of_rounds']}")
    warm_up(floor.url, [lookup_path(FLOOR_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
    raw["convex_floor_p50_ratio"] = measure_floor_p50(small, floor, BY_PHONE_CONVEX, FLOOR_CONVEX, convex_phones)
    log(f"convex_floor_p50_ratio {raw['convex_floor_p50_ratio']['value']:.3f} "
        f"{raw['convex_floor_p50_ratio']['median_of_rounds']}")


def load_figures(run: Run, small: Gunicorn) -> None:
    args, raw = run.args, run.raw
    log("slow clients: lookup p99 with and without 200 slow connections held")
    raw["slow_client_p99_ratio"] = measure_slow_clients(small, run.phone_rounds(args.small, 5, per_round=500))
    log("convex: new TCP connections per 1,000 proxied requests")
    raw["convex_connections_per_1000"] = count_convex_connections(
        run.env(run.small_url), run.tmp / "gunicorn-count.log", run.standin.port,
        run.convex_targets, rounds=3)
    log("bsuid: lookup by bsuid vs by phone, same contacts, alternated")
    raw["bsuid_p50_ratio"] = run_bsuid_figure(small, run.small_url, args, run.rng)


def latency_figure(run: Run) -> None:
    log("latency: 10 ms each way between the app and PostgreSQL, original pattern vs Kontak")
    delay = DelayProxy(run.pg.port, 0.010)
    delay_port = delay.start()
    try:
        delayed = run.serve(run.small_url.replace(f":{run.pg.port}/", f":{delay_port}/"), "gunicorn-delay.log",
                            app="bench.original_pattern:create_app()")
        latency_phones = run.phone_rounds(run.args.small, 7 + 1, per_round=30)
        warm_up(delayed.url, [lookup_path(route, ws, ph) for ws, ph in latency_phones[0]
                              for route in (BY_PHONE, original_pattern.ROUTE)])
        run.raw["latency_pattern_ratio"] = measure_latency_pattern(delayed, latency_phones[1:])
    finally:
        run.stop_servers()
        delay.stop()


def measure_everything(run: Run) -> None:
    args, raw = run.args, run.raw
    small = run.serve(run.small_url, "gunicorn-10k.log")
    large = run.serve(database_url(run.admin_url, "bench_1m"), "gunicorn-1m.log")
    convex_phones = run.convex_rounds()
    lookup_figures(run, small, large, convex_phones)
    log("floors: bare Flask apps (same SQL, same Convex call) next to Kontak, alternated")
    floor = run.serve(run.small_url, "gunicorn-floor.log", app="bench.floor:create_app()")

    def workspace_keys(floor_phones: list[list[tuple[str, str]]]) -> None:
        log("keys per workspace: round trips and floor p50 with a workspace key (CRM_API_KEY alongside)")
        raw["workspace_key"] = keys_bench.measure(run.pg, run.small_url, small, floor,
                                                  sample_phones(args.small, 50, run.rng),
                                                  missing_phones(50, run.rng), floor_phones, API_KEY)

    floor_figures(run, small, floor, convex_phones, after_p50=workspace_keys)
    log("metrics: by-phone p50 with METRICS=on vs off, two more gunicorns, alternated")
    raw["metrics"] = metrics_cost.measure(run.env(run.small_url), run.tmp,
                                          run.phone_rounds(args.small, args.rounds + 1))
    load_figures(run, small)
    run.stop_servers()
    latency_figure(run)
    log("ingest: statements per Kapso delivery (1 and 1,000 senders), a 1,000-sender delivery 10 ms away")
    raw["ingest"] = ingest_cost.measure(run.pg, run.admin_url, run.tmp, API_KEY)
    log_ingest(raw["ingest"])
    log(f"stand-in at {SYNC_CONTACTS:,} contacts: sync-convex copy, counts verified, then lookups")
    sync_url = database_url(run.admin_url, "bench_100k")
    seed_database(run.admin_url, sync_url, "bench_100k", SYNC_CONTACTS, 2)
    raw["sync"] = sync_bench.measure(sync_url, SYNC_CONTACTS, run.tmp)
    log(f"follow: sync-convex --follow as its own process over {follow_bench.CONTACTS:,} contacts: lag at "
        f"{follow_bench.RATE} changes/s, webhook deliveries/s with change capture on and off")
    raw["follow"] = follow_bench.measure(run.admin_url, run.tmp)
    log("shadow: by-phone p50 with every lookup shadowed on Convex (SHADOW_SAMPLE=1) vs 0, alternated")
    raw["shadow"] = shadow_bench.measure(run.admin_url, run.tmp)


def run_all(args: argparse.Namespace) -> None:
    """Every figure, then the result files."""
    started = time.perf_counter()
    with bench_cluster() as (tmp, pg, admin_url):
        log(f"seeding {args.small:,} and {args.large:,} contacts (COPY, 2 processes)")
        seconds = {"10k": seed_database(admin_url, database_url(admin_url, "bench_10k"), "bench_10k", args.small, 1),
                   "1m": seed_database(admin_url, database_url(admin_url, "bench_1m"), "bench_1m", args.large, 2)}
        log(f"seeded in {seconds['10k']:.0f} s and {seconds['1m']:.0f} s")
        with demo_standin(tmp) as (standin, convex_targets):
            run = Run(args, tmp, pg, admin_url, standin, convex_targets)
            try:
                measure_everything(run)
            finally:
                run.stop_servers()
    run.raw["round_trips"]["seeding_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    write_results(build_report(run.raw, args, time.perf_counter() - started), args.label)


# --- one figure or group alone, printed (no result files) -------------------------------------------------


def run_floors_only(args: argparse.Namespace) -> None:
    """The three floor figures, measured exactly as in the full run, printed (no result files)."""
    with bench_cluster() as (tmp, pg, admin_url):
        seed_database(admin_url, database_url(admin_url, "bench_10k"), "bench_10k", args.small, 1)
        with demo_standin(tmp) as (standin, convex_targets):
            run = Run(args, tmp, pg, admin_url, standin, convex_targets)
            try:
                small = run.serve(run.small_url, "gunicorn-10k.log")
                floor = run.serve(run.small_url, "gunicorn-floor.log", app="bench.floor:create_app()")
                convex_phones = run.convex_rounds()
                warm_up(small.url, [lookup_path(BY_PHONE_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
                floor_figures(run, small, floor, convex_phones)
            finally:
                run.stop_servers()
    print(json.dumps({k: round(v["value"], 3) for k, v in run.raw.items()}))


def run_bsuid_figure(server: Gunicorn, url: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """`bsuid_p50_ratio` on `server` (serving `url`): BSUIDs given, then measured."""
    updated = give_bsuids(url)
    n, r = args.per_round, args.rounds
    result = measure_bsuid(server, chunks(sample_identities(url, n * (r + 1), rng), n))
    result["contacts_given_a_bsuid"] = updated
    return result


def run_bsuid_only(args: argparse.Namespace) -> None:
    """`bsuid_p50_ratio` alone, measured exactly as in the full run (10,000 contacts, printed, no result files)."""
    rng = random.Random(SEED)
    with bench_cluster() as (tmp, _pg, admin_url):
        small_url = database_url(admin_url, "bench_10k")
        seed_database(admin_url, small_url, "bench_10k", args.small, 1)
        # No Convex call is made: the stand-in's URL is only a required setting here.
        server = Gunicorn({"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": f"http://127.0.0.1:{free_port()}",
                           "DATABASE_URL": small_url}, tmp / "gunicorn-10k.log")
        try:
            result = run_bsuid_figure(server, small_url, args, rng)
        finally:
            server.stop()
    log(f"bsuid_p50_ratio {result['value']:.3f} {result['median_of_rounds']} "
        f"({result['contacts_given_a_bsuid']:,} contacts given a bsuid)")
    print(json.dumps({"bsuid_p50_ratio": round(result["value"], 3), **result["median_of_rounds"]}))


def run_ingest_only(_args: argparse.Namespace) -> None:
    """The two ingest figures alone, measured exactly as in the full run (printed, no result files)."""
    with bench_cluster() as (tmp, pg, admin_url):
        result = ingest_cost.measure(pg, admin_url, tmp, API_KEY)
    log_ingest(result)
    trips, far = result["ingest_round_trips_per_delivery"], result["batch_1000_at_10ms_s"]
    print(json.dumps({"ingest_round_trips_per_delivery": trips["value"],
                      "statements_per_delivery": trips["statements_per_delivery"], "same": trips["same"],
                      "batch_1000_at_10ms_s": round(far["value"], 3), "batch_seconds": far["batch_seconds"],
                      "one_sender_median_s": far["one_sender_median_s"]}))


def run_follow_only(_args: argparse.Namespace) -> None:
    """The two follow figures alone, measured exactly as in the full run; unlike the other groups it also
    writes bench/results/follow-<date>-<host>.{json,md} (bench/follow.py)."""
    raw = follow_bench.run_figures()
    lag, ingest = raw["follow_lag_p99_ms"], raw["ingest_with_capture_ratio"]
    print(json.dumps({"follow_lag_p99_ms": round(lag["value"], 1), "p50_ms": lag["p50_ms"], "max_ms": lag["max_ms"],
                      "probes": lag["probes"], "backlog_at_end_of_writes": lag["backlog_at_end_of_writes"],
                      "ingest_with_capture_ratio": round(ingest["value"], 3), **ingest["median_of_rounds"]}))


def run_shadow_only(_args: argparse.Namespace) -> None:
    """`shadow_p50_ratio` alone, measured as in the full run; also writes bench/results/shadow-<date>-<host>.{json,md}
    (bench/shadow.py)."""
    raw = shadow_bench.run_figures()
    print(json.dumps({"shadow_p50_ratio": round(raw["shadow_p50_ratio"]["value"], 3),
                      **raw["shadow_p50_ratio"]["median_of_rounds"],
                      "convex_route_shadow_p50_ratio": round(raw["convex_route_shadow_p50_ratio"]["value"], 3)}))


def log_ingest(result: dict[str, Any]) -> None:
    trips, far = result["ingest_round_trips_per_delivery"], result["batch_1000_at_10ms_s"]
    log(f"ingest_round_trips_per_delivery {trips['value']} {trips['statements_per_delivery']} "
        f"(same for 1 and {ingest_cost.BATCH:,}: {trips['same']}; first 1-sender delivery: "
        f"{trips['statements_of_the_first']['1']})")
    log(f"batch_1000_at_10ms_s {far['value']:.3f} {far['batch_seconds']} "
        f"(1 sender: median {far['one_sender_median_s']:.3f} s)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000, help="contacts in the large database")
    parser.add_argument("--small", type=int, default=10_000, help="contacts in the small database")
    parser.add_argument("--rounds", type=int, default=9, help="alternated rounds per figure")
    parser.add_argument("--per-round", type=int, default=200, help="requests per side per round")
    parser.add_argument("--label", default="", help="suffix of the result files (e.g. 'before')")
    parser.add_argument("--only", choices=["floors", "bsuid", "ingest", "follow", "shadow", "metrics"],
                        help="only the floor figures, "
                        "only bsuid_p50_ratio (10,000 contacts), or only the two ingest figures (statements per Kapso "
                        "delivery, a 1,000-sender delivery 10 ms away); printed, no result files: for measuring a "
                        "change to Kontak's request path. Or only the two follow figures (sync-convex --follow's lag "
                        "at 200 changes/s, webhook deliveries/s with change capture on ÷ off), printed and written "
                        "to bench/results/follow-<date>-<host>.{json,md}. Or only shadow_p50_ratio (by-phone p50 with "
                        "SHADOW_SAMPLE=1 ÷ 0), printed and written to bench/results/shadow-<date>-<host>.{json,md}. Or "
                        "only metrics_p50_ratio (METRICS=on ÷ off), written to bench/results/metrics-<date>-<host>.*")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runs = {"floors": run_floors_only, "bsuid": run_bsuid_only, "ingest": run_ingest_only,
            "follow": run_follow_only, "shadow": run_shadow_only, "metrics": metrics_cost.run_figures,
            None: run_all}
    runs[args.only](args)


if __name__ == "__main__":
    main()
