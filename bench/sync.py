"""The stand-in at real size: sync_convex_rows_per_s and standin_lookup_p50_ms_100k.

`measure(database_url, contacts)` copies a seeded PostgreSQL into a fresh
stand-in of its own with sync-convex's code (commands/sync/), then
times lookups straight against the stand-in's HTTP action. Standalone:

    .venv/bin/python -m bench.sync [--contacts 100000]

starts its own embedded PostgreSQL, seeds it, and prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import requests

from commands.compare import synthetic
from commands.sync import postgres_to_convex, verification
from services.convex.admin import ConvexAdmin
from services.convex.client import LOOKUP_PATH
from services.postgres.bulk import copy_contacts, replace_workspaces
from services.postgres.dataset import sample_contacts
from services.postgres.migrations import upgrade
from tools.convex_standin import ConvexStandin
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

API_KEY = "bench-sync-" + uuid.uuid4().hex
FIGURES = [
    ("standin_lookup_p50_ms_100k", "stand-in HTTP-action lookup p50 at 100,000 contacts", "<=", 5.0, " ms"),
    # No goal: the stand-in's import rate is not Convex's (reported, like bench/run.py's "report" figures).
    ("sync_convex_rows_per_s", "sync-convex rows/s into the stand-in (PostgreSQL -> import)", "report", None, ""),
]


def seed(database_url: str, contacts: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        replace_workspaces(conn, synthetic.workspaces(synthetic.DEFAULT_SEED))
        copy_contacts(conn, synthetic.contacts(synthetic.DEFAULT_SEED, contacts))
        conn.execute("ANALYZE")


def lookup_p50_ms(standin_url: str, probes: list[tuple[str, str]], warmup: int = 50) -> float:
    session = requests.Session()
    session.headers["x-api-key"] = API_KEY
    timings = []
    for i, (workspace_id, phone) in enumerate(probes):
        started = time.perf_counter()
        response = session.get(standin_url + LOOKUP_PATH, params={"phone": phone, "workspace_id": workspace_id})
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or not response.json().get("found"):
            raise RuntimeError(f"stand-in lookup answered {response.status_code}: {response.text[:200]}")
        if i >= warmup:
            timings.append(elapsed)
    timings.sort()
    return timings[len(timings) // 2] * 1000


def measure(database_url: str, contacts: int, tmp: Path, lookups: int = 400, batch: int = 200) -> dict[str, Any]:
    """Sync `database_url` (already holding `contacts` contacts) into a new stand-in; time it and its lookups."""
    standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin-sync.log")
    standin.start()
    try:
        admin = ConvexAdmin(standin.url, API_KEY)
        with psycopg.connect(database_url, autocommit=True) as conn:
            state = postgres_to_convex.SyncState(tmp / "sync-state.json", database_url, standin.url)
            result = postgres_to_convex.sync(conn, admin, state, batch)
            # The copy must verify before its rate means anything: counts per workspace and table.
            counted = time.perf_counter()
            report = verification.Verification()
            verification.verify_counts(conn, admin, report)
            counts_seconds = time.perf_counter() - counted
            if not report.ok:
                raise RuntimeError("sync-convex copy does not verify: " + "; ".join(report.mismatches[:5]))
            # By phone, as before username-only contacts existed: the figure stays comparable.
            probes = [(s.workspace_id, s.phone) for s in sample_contacts(conn, 2 * (lookups + 50), seed=0.5)
                      if s.phone is not None][: lookups + 50]
        p50 = lookup_p50_ms(standin.url, probes)
    finally:
        standin.stop()
    return {"sync_convex_rows_per_s": round(result.rows_per_s), "sync_convex_seconds": round(result.seconds, 1),
            "sync_convex_rows": result.rows, "sync_convex_contacts": contacts,
            "sync_convex_verify_counts_seconds": round(counts_seconds, 1),
            f"standin_lookup_p50_ms_{_label(contacts)}": round(p50, 2)}


def _label(contacts: int) -> str:
    return f"{contacts // 1000}k" if contacts % 1000 == 0 else str(contacts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kontak-bench-sync-") as name:
        tmp = Path(name)
        pg = EmbeddedPostgres(tmp / "pg", free_port(), durable=False)
        url = pg.start()
        try:
            seed(url, args.contacts)
            print(json.dumps(measure(url, args.contacts, tmp), indent=2), flush=True)
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
