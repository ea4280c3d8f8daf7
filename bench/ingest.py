"""Ingestion benchmark: Kapso deliveries per second into PostgreSQL.

Posts 1,000 signed deliveries of batch size 1, then 1,000 of batch size 50,
to a real gunicorn serving Kontak over a durable embedded PostgreSQL, and
reports messages per second. Results: bench/results/ingest-<date>-<host>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import requests

from bench.data import durable_postgres
from bench.deliveries import signed_delivery
from bench.measure import parse_options
from tools.servers import GunicornServer

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "bench-secret"
PHONE_NUMBER_ID = "bench-phone-id"
WORKSPACE = {"id": "00000000-0000-4000-8000-00000000be00", "name": "Bench", "kapso_phone_id": PHONE_NUMBER_ID}


def v2_event(n: int, contacts: int) -> dict:
    phone = f"+62812{n % contacts:08d}"
    return {
        "message": {"id": f"wamid.bench-{n}", "timestamp": str(1_768_000_000 + n), "type": "text",
                    "text": {"body": f"Halo, mau tanya beasiswa ke UK nomor {n}"},
                    "kapso": {"direction": "inbound", "status": "received"}},
        "conversation": {"id": f"conv-{phone}", "phone_number": phone, "phone_number_id": PHONE_NUMBER_ID,
                         "kapso": {"contact_name": f"Kontak {n % contacts}"}},
        "is_new_conversation": False, "phone_number_id": PHONE_NUMBER_ID,
    }


def deliveries(count: int, batch: int, start: int, contacts: int) -> list[tuple[bytes, dict]]:
    out = []
    for d in range(count):
        out.append(signed_delivery([v2_event(start + d * batch + i, contacts) for i in range(batch)], SECRET))
    return out


def post_all(url: str, work: list[tuple[bytes, dict]], concurrency: int) -> tuple[float, list[float], int]:
    sessions = [requests.Session() for _ in range(concurrency)]
    latencies: list[float] = []
    stored = 0

    def send(i: int) -> tuple[float, int]:
        raw, headers = work[i]
        started = time.perf_counter()
        response = sessions[i % concurrency].post(url, data=raw, headers=headers, timeout=30)
        response.raise_for_status()
        return time.perf_counter() - started, response.json()["stored"]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for latency, n in pool.map(send, range(len(work))):
            latencies.append(latency)
            stored += n
    return time.perf_counter() - started, latencies, stored


def main() -> None:
    args = parse_options(__doc__.splitlines()[0], deliveries=1000, concurrency=4, contacts=500)
    with durable_postgres({"workspaces": [WORKSPACE]}) as (tmp, postgres):
        server = GunicornServer({"DATABASE_URL": postgres.url, "CRM_API_KEY": "bench-key",
                                 "KAPSO_WEBHOOK_SECRET": SECRET}, tmp / "gunicorn.log")
        try:
            rows, start = [], 0
            for batch in (1, 50):
                work = deliveries(args.deliveries, batch, start, args.contacts)
                start += args.deliveries * batch
                elapsed, latencies, stored = post_all(server.url + "/api/webhook/kapso", work, args.concurrency)
                assert stored == args.deliveries * batch, "every message is stored once"
                latencies.sort()
                rows.append({"batch_size": batch, "deliveries": args.deliveries, "messages": stored,
                             "seconds": round(elapsed, 2), "messages_per_second": round(stored / elapsed),
                             "deliveries_per_second": round(args.deliveries / elapsed, 1),
                             "p50_ms": round(statistics.median(latencies) * 1000, 2),
                             "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2)})
                print(f"batch {batch:>2}: {rows[-1]['messages_per_second']:>6} messages/s "
                      f"({rows[-1]['deliveries_per_second']} deliveries/s, p50 {rows[-1]['p50_ms']} ms)")
        finally:
            server.stop()
    write_results(rows, args)


def write_results(rows: list[dict], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"ingest-{date.today().isoformat()}-{platform.node()}"
    meta = {"concurrency": args.concurrency, "contacts": args.contacts, "gunicorn": "2 workers x 4 threads",
            "postgres": "embedded, fsync on", "machine": f"{platform.machine()}, shared and noisy"}
    stem.with_suffix(".json").write_text(json.dumps({"ingest": rows, "setup": meta}, indent=2) + "\n")
    lines = ["| batch size | deliveries | messages | messages/s | deliveries/s | p50 ms | p99 ms |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['batch_size']} | {r['deliveries']} | {r['messages']} | {r['messages_per_second']} | "
              f"{r['deliveries_per_second']} | {r['p50_ms']} | {r['p99_ms']} |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
