"""What one Kapso webhook delivery costs in PostgreSQL, for `make bench`.

- `ingest_round_trips_per_delivery`: the statements PostgreSQL itself logs
  (log_statement=all) for the app's connections while one signed delivery is
  posted to real gunicorn, counted between markers, for a 1-sender delivery
  (one v2 event, as Kapso sends one message) and for a 1,000-sender v2 batch.
  Every sender is new (a contact, a conversation and a message created), so
  this is the heaviest delivery of its size. Goal: the same count for both
  sizes, at most 12.
- `batch_1000_at_10ms_s`: a 1,000-sender batch posted to a gunicorn that
  reaches PostgreSQL only through a 10 ms-each-way TCP proxy
  (tools/delay_proxy.py): wall time from the POST to its 200, median over
  deliveries (each of new senders, on a warm keep-alive connection). Goal: ≤ 2 s.

Both run on a database of their own (one workspace, no contacts), in the
bench's embedded PostgreSQL. `python -m bench.run --only ingest` prints them.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.data import prepare_database
from bench.deliveries import signed_delivery
from bench.measure import Gunicorn
from bench.proxies import DelayProxy
from bench.statement_log import logged_between, statement_logging
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

FIGURES = [
    ("ingest_round_trips_per_delivery", "PostgreSQL statements per Kapso delivery, 1 sender and 1,000 senders "
     "(the larger)", "<=", 12, ""),
    ("batch_1000_at_10ms_s", "1,000-sender delivery, 10 ms each way to PostgreSQL: POST until its 200 (median)",
     "<=", 2, " s"),
]
# ingest_round_trips_per_delivery is met only when the two sizes cost the same (build_report checks `same`).
ROUND_TRIPS_GOAL = "same for 1 and 1,000 senders, ≤ 12"
DATABASE = "bench_ingest"
ROUTE = "/api/webhook/kapso"
SECRET = "bench-ingest-" + uuid.uuid4().hex
PHONE_NUMBER_ID = "bench-ingest-pnid"
WORKSPACE = {"id": "00000000-0000-4000-8000-0000000019be", "name": "Bench ingest", "kapso_phone_id": PHONE_NUMBER_ID}
T0 = 1_767_000_000
BATCH = 1000
DELAY_S = 0.010
COUNTED_EACH = 3  # deliveries of each size whose statements are counted
TIMED = 5  # 1,000-sender deliveries timed through the delay proxy


class Senders:
    """Fresh senders: sender n is +62816 and n on 8 digits, never one the bench used before."""

    def __init__(self) -> None:
        self.next = 0

    def delivery(self, senders: int) -> tuple[bytes, dict[str, str]]:
        """A signed delivery of `senders` new senders, one inbound text each: one v2 event for one
        sender, a v2 batch otherwise."""
        events = [_event(n) for n in range(self.next, self.next + senders)]
        self.next += senders
        return signed_delivery(events, SECRET)


def _event(n: int) -> dict[str, Any]:
    phone = f"+62816{n:08d}"
    return {"message": {"id": f"wamid.bench-ingest.{n}", "timestamp": str(T0 + n), "type": "text",
                        "text": {"body": f"Halo, mau tanya beasiswa nomor {n}"},
                        "kapso": {"direction": "inbound", "status": "received"}},
            "conversation": {"id": f"conv-{phone}", "phone_number": phone, "phone_number_id": PHONE_NUMBER_ID,
                             "kapso": {"contact_name": f"Pengirim {n}"}},
            "is_new_conversation": True, "phone_number_id": PHONE_NUMBER_ID}


class WebhookClient:
    """One keep-alive HTTP/1.1 connection (so one gunicorn worker) posting deliveries."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def post(self, delivery: tuple[bytes, dict[str, str]], senders: int) -> float:
        """Seconds from sending the POST to reading its whole 200; every sender must be stored."""
        raw, headers = delivery
        started = time.perf_counter()
        self.conn.request("POST", ROUTE, body=raw, headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"POST {ROUTE} ({senders} senders) answered {response.status}: {body[:200]!r}")
        answer = json.loads(body)
        if answer["stored"] != senders:
            raise RuntimeError(f"POST {ROUTE}: {senders} new senders, answer {answer}")
        return elapsed

    def close(self) -> None:
        self.conn.close()


def create_database(admin_url: str) -> str:
    """The ingest database: Kontak's schema and one workspace, no contacts. Returns its URL."""
    url = admin_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    prepare_database(url, {"workspaces": [WORKSPACE]})
    return url


def server_env(database_url: str, api_key: str) -> dict[str, str]:
    # No Convex call is made: the Convex URL is only a required setting here.
    return {"CRM_API_KEY": api_key, "CONVEX_SITE_URL": f"http://127.0.0.1:{free_port()}",
            "DATABASE_URL": database_url, "KAPSO_WEBHOOK_SECRET": SECRET}


# --- ingest_round_trips_per_delivery ------------------------------------------------------------------


def count_round_trips(pg: EmbeddedPostgres, admin_url: str, server: Gunicorn, senders: Senders) -> dict[str, Any]:
    """Statements the database logs for each of COUNTED_EACH deliveries of 1 and of 1,000 senders, alternated,
    on one warm keep-alive connection (one worker, its schema check and pool connection done)."""
    client = WebhookClient(server.url)
    counts: dict[str, list[int]] = {"1": [], str(BATCH): []}
    statements: dict[str, list[str]] = {}
    try:
        for size in (1, BATCH, 1):  # warm-up, untimed and uncounted
            client.post(senders.delivery(size), size)
        with statement_logging(admin_url, log_parameter_max_length="0") as conn:
            for _ in range(COUNTED_EACH):
                for size in (1, BATCH):
                    def post(size: int = size) -> None:
                        client.post(senders.delivery(size), size)

                    logged = logged_between(conn, pg.log_file, post)
                    counts[str(size)].append(len(logged))
                    statements.setdefault(str(size), [f"{kind}: {text[:60]}" for kind, text in logged])
    finally:
        client.close()
    every = counts["1"] + counts[str(BATCH)]
    return {"deliveries_each": COUNTED_EACH, "statements_per_delivery": counts,
            "statements_of_the_first": statements, "same": len(set(every)) == 1, "value": max(every)}


# --- batch_1000_at_10ms_s -----------------------------------------------------------------------------


def time_batch_at_distance(pg: EmbeddedPostgres, url: str, tmp: Path, api_key: str,
                           senders: Senders) -> dict[str, Any]:
    """A gunicorn reaching PostgreSQL only through a DELAY_S-each-way proxy; on one keep-alive connection,
    after untimed warm-up deliveries, TIMED pairs of deliveries: 1 sender, then 1,000 senders."""
    delay = DelayProxy(pg.port, DELAY_S)
    delay_port = delay.start()
    far_url = url.replace(f":{pg.port}/", f":{delay_port}/")
    assert far_url != url
    server = None
    client = None
    try:
        server = Gunicorn(server_env(far_url, api_key), tmp / "gunicorn-ingest-far.log")
        client = WebhookClient(server.url)
        for size in (1, 1, BATCH):
            client.post(senders.delivery(size), size)
        one, batch = [], []
        for _ in range(TIMED):
            one.append(client.post(senders.delivery(1), 1))
            batch.append(client.post(senders.delivery(BATCH), BATCH))
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
        delay.stop()
    return {"delay_each_way_ms": DELAY_S * 1000, "deliveries": TIMED, "batch_seconds": [round(s, 4) for s in batch],
            "one_sender_seconds": [round(s, 4) for s in one], "batch_max_s": round(max(batch), 4),
            "one_sender_median_s": round(statistics.median(one), 4), "value": statistics.median(batch)}


def measure(pg: EmbeddedPostgres, admin_url: str, tmp: Path, api_key: str) -> dict[str, Any]:
    """Both figures on a new database `bench_ingest`; every message posted is checked stored once."""
    url = create_database(admin_url)
    senders = Senders()
    server = Gunicorn(server_env(url, api_key), tmp / "gunicorn-ingest.log")
    try:
        round_trips = count_round_trips(pg, admin_url, server, senders)
    finally:
        server.stop()
    at_distance = time_batch_at_distance(pg, url, tmp, api_key, senders)
    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM messages)").fetchone()
    if stored != (senders.next, senders.next):
        raise RuntimeError(f"{senders.next} senders posted, (contacts, messages) stored: {stored}")
    return {"ingest_round_trips_per_delivery": round_trips, "batch_1000_at_10ms_s": at_distance,
            "senders_posted": senders.next, "batch_body_bytes": len(Senders().delivery(BATCH)[0])}
