"""Keys per workspace in `make bench`: the lookup's figures with a workspace key.

- `round_trips_found` / `round_trips_not_found` with a workspace key: statements
  the database logs for the app's connections per lookup, as in bench/figures.py.
  The key ring's snapshot (services/api_keys.py) is refreshed in the
  background, at most once a second per worker while keys are in use; it
  belongs to no lookup, so its statements (tagged `KEY_RING_TAG`) are counted
  apart and reported as `key_ring_refreshes`.
- `floor_p50_ratio` with a workspace key: Kontak's by-phone p50 ÷ the bare
  floor app's p50 (bench/floor.py), request by request, same contacts.

Run alone on a small data set: `.venv/bin/python -m bench.keys` (prints JSON).
From bench/run.py: `bench.keys.measure(...)` with the servers it already runs.
"""

from __future__ import annotations

import json
import random
import statistics
import uuid
from typing import Any

import psycopg

from bench.data import SEED, bench_cluster, chunks, database_url, missing_phones, sample_phones, seed_database
from bench.figures import count_round_trips
from bench.measure import BY_PHONE, FLOOR_BY_PHONE, Gunicorn, KeepAliveClient, lookup_path, p50_ms, parse_options
from commands.keys import workspace_keys
from services import api_keys
from tools.embedded_pg import EmbeddedPostgres

GLOBAL_KEY = "bench-keys-" + uuid.uuid4().hex
GOALS = {"round_trips_found": ("==", 1), "round_trips_not_found": ("==", 1), "floor_p50_ratio": ("<=", 1.10)}


def create_workspace_keys(url: str, workspaces: list[str]) -> dict[str, str]:
    """One key per workspace, in the database Kontak serves: workspace id -> key."""
    keys = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for workspace in workspaces:
            _row, keys[workspace] = workspace_keys.create_key(conn, workspace, "bench")
    return keys


class KeyedClient:
    """A keep-alive client sending, with each lookup, the key of the workspace it asks for."""

    def __init__(self, base_url: str, keys: dict[str, str]) -> None:
        self.client, self.keys = KeepAliveClient(base_url), keys

    def lookup(self, route: str, workspace: str, phone: str) -> tuple[float, dict]:
        self.client.headers = {"x-api-key": self.keys[workspace]}
        return self.client.get_ok(lookup_path(route, workspace, phone))

    def close(self) -> None:
        self.client.close()


def warm_up(server: Gunicorn, keys: dict[str, str], phones: list[tuple[str, str]], clients: int = 8) -> None:
    """Untimed lookups over several connections: every worker's key ring and pool are loaded."""
    for i in range(clients):
        client = KeyedClient(server.url, keys)
        for workspace, phone in phones[i::clients]:
            client.lookup(BY_PHONE, workspace, phone)
        client.close()


def measure_floor_p50(server: Gunicorn, floor: Gunicorn, keys: dict[str, str],
                      phones: list[list[tuple[str, str]]], global_key: str | None = None) -> dict[str, Any]:
    """Per round, request by request: Kontak's by-phone with the workspace's key, then (when
    `global_key` is given) with CRM_API_KEY, then the floor's; the same contact each time.

    `ratio` is floor_p50_ratio with a workspace key; `ratio_global_key` the same figure with
    CRM_API_KEY in the same rounds, so what the workspace key costs is their difference, not
    the noise between two runs.
    """
    kontak, bare = KeyedClient(server.url, keys), KeyedClient(floor.url, keys)
    deployment = KeyedClient(server.url, dict.fromkeys(keys, global_key)) if global_key else None
    rounds = []
    for batch in phones:
        tk, tg, tf = [], [], []
        for workspace, phone in batch:
            elapsed, body = kontak.lookup(BY_PHONE, workspace, phone)
            tk.append(elapsed)
            assert body["found"] is True
            if deployment is not None:
                tg.append(deployment.lookup(BY_PHONE, workspace, phone)[0])
            elapsed, body = bare.lookup(FLOOR_BY_PHONE, workspace, phone)
            tf.append(elapsed)
            assert body["found"] is True
        result = {"kontak_p50_ms": p50_ms(tk), "floor_p50_ms": p50_ms(tf), "ratio": p50_ms(tk) / p50_ms(tf)}
        if tg:
            result |= {"kontak_global_key_p50_ms": p50_ms(tg), "ratio_global_key": p50_ms(tg) / p50_ms(tf)}
        rounds.append(result)
    for client in (kontak, bare, deployment):
        if client is not None:
            client.close()
    summary = {"value": statistics.median(r["ratio"] for r in rounds),
               "requests_per_side_per_round": len(phones[0]),
               "rounds": [{k: round(v, 4) for k, v in r.items()} for r in rounds]}
    if global_key:
        summary["value_global_key"] = statistics.median(r["ratio_global_key"] for r in rounds)
    return summary


def measure(pg: EmbeddedPostgres, url: str, server: Gunicorn, floor: Gunicorn, found: list[tuple[str, str]],
            missing: list[tuple[str, str]], floor_phones: list[list[tuple[str, str]]],
            global_key: str | None = None) -> dict[str, Any]:
    """The three figures with workspace keys, on servers bench/run.py already runs against `url`
    (`global_key`: its CRM_API_KEY, measured alongside for comparison).

    `floor_phones[0]` warms up; the others are timed rounds.
    """
    workspaces = sorted({ws for ws, _ in found + missing + [p for batch in floor_phones for p in batch]})
    keys = create_workspace_keys(url, workspaces)
    warm_up(server, keys, floor_phones[0])
    client = KeyedClient(server.url, keys)
    try:
        round_trips = count_round_trips(pg, url, lambda ws, phone: client.lookup(BY_PHONE, ws, phone)[1], found,
                                        missing, apart=api_keys.KEY_RING_TAG)
    finally:
        client.close()
    floor_ratio = measure_floor_p50(server, floor, keys, floor_phones[1:], global_key)
    values = {"round_trips_found": round_trips["found"], "round_trips_not_found": round_trips["not_found"],
              "floor_p50_ratio": floor_ratio["value"]}
    met = {name: (values[name] == goal if op == "==" else values[name] <= goal)
           for name, (op, goal) in GOALS.items()}
    return {"figures": values, "met": met, "round_trips": round_trips, "floor_p50_ratio": floor_ratio}


def main() -> None:
    args = parse_options("bench figures with a workspace key", contacts=10_000, rounds=5, per_round=200)
    rng = random.Random(SEED)
    with bench_cluster() as (tmp, pg, admin_url):
        url = database_url(admin_url, "bench_keys")
        seed_database(admin_url, url, "bench_keys", args.contacts, 1)
        env = {"DATABASE_URL": url, "CONVEX_SITE_URL": "http://127.0.0.1:9", "CRM_API_KEY": GLOBAL_KEY}
        servers: list[Gunicorn] = []
        try:
            servers.append(Gunicorn(env, tmp / "gunicorn.log"))
            servers.append(Gunicorn(env, tmp / "gunicorn-floor.log", app="bench.floor:create_app()"))
            n = args.per_round
            report = measure(pg, url, servers[0], servers[1], sample_phones(args.contacts, 50, rng),
                             missing_phones(50, rng),
                             chunks(sample_phones(args.contacts, n * (args.rounds + 1), rng), n),
                             GLOBAL_KEY)
        finally:
            for server in servers:
                server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
