"""The figures of `make bench` under load: throughput (wrk slices alternated), lookups while slow
clients hold connections, and new TCP connections to Convex per 1,000 proxied requests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.measure import (
    API_KEY,
    BY_PHONE,
    BY_PHONE_CONVEX,
    FLOOR_BY_PHONE,
    Gunicorn,
    KeepAliveClient,
    lookup_path,
    p99_ms,
    summarize_rounds,
    wrk_rps,
)
from bench.proxies import CountingProxy
from services.config import PROJECT_ROOT

SLOW_CLIENTS = 200
WRK_CONNECTIONS = 32


def alternated_rps(wrk: str, sides: dict[str, tuple[str, list[str]]], rounds: int,
                   seconds: float) -> list[dict[str, float]]:
    """Per round, one wrk slice of `seconds` per side in turn (name -> (server URL, paths cycled through)),
    at WRK_CONNECTIONS connections; one untimed 1 s slice per side first."""
    for url, paths in sides.values():
        wrk_rps(wrk, url, paths, API_KEY, WRK_CONNECTIONS, 1)
    return [{name: wrk_rps(wrk, url, paths, API_KEY, WRK_CONNECTIONS, seconds) for name, (url, paths) in sides.items()}
            for _ in range(rounds)]


def _wrk_summary(results: list[dict[str, float]], numerator: str, denominator: str, seconds: float,
                 paths: int) -> dict[str, Any]:
    rounds = [{**r, "ratio": r[numerator] / r[denominator]} for r in results]
    return summarize_rounds(rounds, None, extra={"seconds_per_slice": seconds, "connections": WRK_CONNECTIONS,
                                                 "paths": paths, "client": "wrk, 1 thread"})


def measure_throughput(wrk: str, server: Gunicorn, phones: list[tuple[str, str]], rounds: int,
                       seconds: float) -> dict[str, Any]:
    """Alternated wrk slices: /healthz, then by-phone cycling through sampled contacts."""
    paths = [lookup_path(BY_PHONE, ws, phone) for ws, phone in phones]
    results = alternated_rps(wrk, {"healthz_rps": (server.url, ["/healthz"]), "by_phone_rps": (server.url, paths)},
                             rounds, seconds)
    return _wrk_summary(results, "by_phone_rps", "healthz_rps", seconds, len(paths))


def measure_floor_throughput(wrk: str, server: Gunicorn, floor: Gunicorn, phones: list[tuple[str, str]],
                             rounds: int, seconds: float) -> dict[str, Any]:
    """Alternated wrk slices: Kontak's by-phone, then the floor's, the same contacts."""
    sides = {"by_phone_rps": (server.url, [lookup_path(BY_PHONE, ws, phone) for ws, phone in phones]),
             "floor_rps": (floor.url, [lookup_path(FLOOR_BY_PHONE, ws, phone) for ws, phone in phones])}
    return _wrk_summary(alternated_rps(wrk, sides, rounds, seconds), "by_phone_rps", "floor_rps", seconds,
                        len(phones))


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
