"""The local Convex stand-in at real size: standin_lookup_p50_ms_100k.

Loads the synthetic data set (commands/synthetic.py) into a fresh stand-in
running the project's own Convex functions, then times lookups over HTTP
against /http/contacts/getByPhone (one keep-alive connection, one request at a
time). The stand-in's latency is not Convex's.

    .venv/bin/python -m bench.standin_lookup [--contacts 100000] [--load data|import]

--load data (default) hands the stand-in the data set as its --data file (one
import at start-up); --load import posts it through the import HTTP action
(ConvexAdmin.import_dataset) in batches and reports the import rate as the
tables fill. --no-indexes runs the stand-in with convex-test's own table walk
(CONVEX_STANDIN_INDEXES=off), for before/after comparisons. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from commands.compare import synthetic
from services.convex.admin import ConvexAdmin
from services.convex.client import LOOKUP_PATH
from tools.convex_standin import ConvexStandin
from tools.servers import free_port

API_KEY = "bench-standin-" + uuid.uuid4().hex


def label(contacts: int) -> str:
    return f"{contacts // 1000}k" if contacts % 1000 == 0 else str(contacts)


def lookup_timings(url: str, probes: list[tuple[str, str]], warmup: int) -> list[float]:
    session = requests.Session()
    session.headers["x-api-key"] = API_KEY
    timings = []
    for i, (workspace_id, phone) in enumerate(probes):
        started = time.perf_counter()
        response = session.get(url + LOOKUP_PATH, params={"phone": phone, "workspace_id": workspace_id}, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or not response.json().get("found"):
            raise RuntimeError(f"stand-in lookup answered {response.status_code}: {response.text[:200]}")
        if i >= warmup:
            timings.append(elapsed * 1000)
    return timings


def import_batches(url: str, workspaces: list[dict[str, Any]], contacts: list[dict[str, Any]],
                   batch: int) -> dict[str, Any]:
    admin = ConvexAdmin(url, API_KEY, timeout=3600)
    admin.import_dataset({"workspaces": workspaces, "contacts": []})
    rates = []
    started = time.perf_counter()
    for i in range(0, len(contacts), batch):
        part = contacts[i:i + batch]
        t0 = time.perf_counter()
        admin.import_dataset({"workspaces": [], "contacts": part})
        rates.append(len(part) / (time.perf_counter() - t0))
    seconds = time.perf_counter() - started
    tenth = max(1, len(rates) // 10)
    return {"load_seconds": round(seconds, 1), "load_contacts_per_s": round(len(contacts) / seconds),
            "import_contacts_per_s_first_10pct": round(statistics.mean(rates[:tenth])),
            "import_contacts_per_s_last_10pct": round(statistics.mean(rates[-tenth:]))}


def measure(contacts: int, load: str = "data", lookups: int = 400, warmup: int = 50, batch: int = 1000,
            indexes: bool = True, seed: int = synthetic.DEFAULT_SEED) -> dict[str, Any]:
    workspaces = synthetic.workspaces(seed)
    records = list(synthetic.contacts(seed, contacts))
    rng = random.Random(0.5)
    # By phone, as before username-only contacts existed: the figure stays comparable.
    phoned = [r for r in records if r["phone"] is not None]
    sample = [phoned[rng.randrange(len(phoned))] for _ in range(lookups + warmup)]
    probes = [(r["workspace_id"], r["phone"]) for r in sample]
    documents = sum(1 + len(r["notes"]) + (1 + len(r["conversation"]["messages"]) if r["conversation"] else 0)
                    for r in records)

    saved = {name: os.environ.get(name) for name in ("CONVEX_STANDIN_INDEXES", "NODE_OPTIONS")}
    os.environ["CONVEX_STANDIN_INDEXES"] = "on" if indexes else "off"
    # The whole data set is one request body and lives in the process's heap.
    os.environ["NODE_OPTIONS"] = (saved["NODE_OPTIONS"] or "") + " --max-old-space-size=8192"
    with tempfile.TemporaryDirectory(prefix="kontak-bench-standin-") as name:
        tmp = Path(name)
        data_file = None
        if load == "data":
            data_file = tmp / "data.json"
            data_file.write_text(json.dumps({"workspaces": workspaces, "contacts": records}), encoding="utf-8")
        standin = ConvexStandin(API_KEY, data_file=data_file, port=free_port(), log_file=tmp / "standin.log")
        try:
            started = time.perf_counter()
            standin.start(timeout=24 * 3600)
            figures: dict[str, Any] = {}
            if load == "data":
                seconds = time.perf_counter() - started
                figures = {"load_seconds": round(seconds, 1), "load_contacts_per_s": round(contacts / seconds)}
            else:
                figures = import_batches(standin.url, workspaces, records, batch)
            timings = lookup_timings(standin.url, probes, warmup)
        finally:
            standin.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    timings.sort()
    return {f"standin_lookup_p50_ms_{label(contacts)}": round(statistics.median(timings), 2),
            "contacts": contacts, "documents": documents,
            "lookup_p90_ms": round(timings[int(len(timings) * 0.9)], 2), "lookups": len(timings),
            "load": load, "indexes": indexes, **figures,
            "note": "the local stand-in's latency (convex-test in Node), not Convex's"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--load", choices=["data", "import"], default="data")
    parser.add_argument("--lookups", type=int, default=400)
    parser.add_argument("--batch", type=int, default=1000, help="contacts per import request (--load import)")
    parser.add_argument("--no-indexes", action="store_true",
                        help="convex-test's table walk, without the stand-in's indexed reads")
    args = parser.parse_args()
    result = measure(args.contacts, args.load, args.lookups, batch=args.batch, indexes=not args.no_indexes)
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
