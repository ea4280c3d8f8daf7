"""Keys per workspace in `make bench` (issue 14): the lookup's figures with a workspace key.

- `round_trips_found` / `round_trips_not_found` with a workspace key: statements
  the database logs for the app's connections per lookup, as in bench/run.py.
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

import argparse
import json
import random
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.measure import Gunicorn, KeepAliveClient, lookup_path, p50_ms
from commands import key_admin, synthetic
from services import api_keys
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

BY_PHONE = "/api/contacts/by-phone"
FLOOR_BY_PHONE = "/floor/by-phone"
_STATEMENT_LINE = re.compile(r"^kontak\|\S*\s*LOG:\s+(statement|execute [^:]*):")
GLOBAL_KEY = "bench-keys-" + uuid.uuid4().hex
GOALS = {"round_trips_found": ("==", 1), "round_trips_not_found": ("==", 1), "floor_p50_ratio": ("<=", 1.10)}


def create_workspace_keys(url: str, workspaces: list[str]) -> dict[str, str]:
    """One key per workspace, in the database Kontak serves: workspace id -> key."""
    keys = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for workspace in workspaces:
            _row, keys[workspace] = key_admin.create_key(conn, workspace, "bench")
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


def count_round_trips(pg: EmbeddedPostgres, admin_url: str, server: Gunicorn, keys: dict[str, str],
                      found: list[tuple[str, str]], missing: list[tuple[str, str]]) -> dict[str, Any]:
    """Statements logged for the app's connections (log_statement=all) between markers, per lookup."""
    settings = {"log_statement": "all", "log_line_prefix": "%a|"}
    client = KeyedClient(server.url, keys)
    with psycopg.connect(admin_url, autocommit=True, application_name="kontak-bench") as conn:
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # every backend applies the reload before its next command
        try:
            counts, refreshes = {}, {}
            for label, phones, expect_found in (("found", found, True), ("not_found", missing, False)):
                marker = f"kontak-bench-marker-{uuid.uuid4().hex}"
                conn.execute(f"SELECT '{marker}-start'")
                for workspace, phone in phones:
                    assert client.lookup(BY_PHONE, workspace, phone)[1]["found"] is expect_found
                conn.execute(f"SELECT '{marker}-end'")
                counts[label], refreshes[label] = _logged_statements(pg.log_file, marker)
        finally:
            client.close()
            for name in settings:
                conn.execute(f"ALTER SYSTEM RESET {name}")
            conn.execute("SELECT pg_reload_conf()")
    return {"lookups_each": len(found), "statements_logged": counts, "key_ring_refreshes": refreshes,
            "found": counts["found"] / len(found), "not_found": counts["not_found"] / len(missing)}


def _logged_statements(log_file: Path, marker: str) -> tuple[int, int]:
    """(the lookups' statements, the key ring's snapshot statements) between the markers."""
    text = log_file.read_text(errors="replace")
    start = text.index(f"{marker}-start")
    end = text.index(f"{marker}-end", start)
    section = text[text.index("\n", start) + 1:text.rindex("\n", 0, end)]
    lines = [line for line in section.splitlines() if _STATEMENT_LINE.match(line)]
    snapshot = sum(api_keys.KEY_RING_TAG in line for line in lines)
    return len(lines) - snapshot, snapshot


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
    round_trips = count_round_trips(pg, url, server, keys, found, missing)
    floor_ratio = measure_floor_p50(server, floor, keys, floor_phones[1:], global_key)
    values = {"round_trips_found": round_trips["found"], "round_trips_not_found": round_trips["not_found"],
              "floor_p50_ratio": floor_ratio["value"]}
    met = {name: (values[name] == goal if op == "==" else values[name] <= goal)
           for name, (op, goal) in GOALS.items()}
    return {"figures": values, "met": met, "round_trips": round_trips, "floor_p50_ratio": floor_ratio}


def main() -> None:
    from bench import run  # the data set and samples of `make bench`

    parser = argparse.ArgumentParser(description="bench figures with a workspace key (issue 14)")
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(synthetic.DEFAULT_SEED)
    with tempfile.TemporaryDirectory(prefix="kontak-bench-keys-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        admin_url = pg.start()
        url = admin_url.rsplit("/", 1)[0] + "/bench_keys"
        servers: list[Gunicorn] = []
        try:
            run.seed_database(admin_url, url, "bench_keys", args.contacts, 1)
            env = {"DATABASE_URL": url, "CONVEX_SITE_URL": "http://127.0.0.1:9", "CRM_API_KEY": GLOBAL_KEY}
            servers.append(Gunicorn(env, tmp / "gunicorn.log"))
            servers.append(Gunicorn(env, tmp / "gunicorn-floor.log", app="bench.floor:create_app()"))
            n = args.per_round
            report = measure(pg, url, servers[0], servers[1], run.sample_phones(args.contacts, 50, rng),
                             run.missing_phones(50, rng),
                             run.chunks(run.sample_phones(args.contacts, n * (args.rounds + 1), rng), n),
                             GLOBAL_KEY)
        finally:
            for server in servers:
                server.stop()
            pg.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
