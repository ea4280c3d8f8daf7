"""PostgreSQL crashed and started again under Kapso-like traffic on one gunicorn worker (docs/contract.md §7, §11).

Each sender keeps one keep-alive connection, so its retries land on the same worker, the way
bench/soak.py's senders do. Once PostgreSQL is back, that worker must answer normally within 2 s
(no restart), and every delivery must end up stored exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import pytest
import requests

from helpers import wait_until
from services.postgres.dataset import load_dataset
from services.postgres.migrations import upgrade
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

SECRET = "restart-webhook-secret"
DEMO = json.loads((Path(__file__).resolve().parent.parent / "contract" / "demo_data.json").read_text())
WORKSPACE = DEMO["workspaces"][0]
RETRIES = (1.0, 4.0, 9.0)  # Kapso's 10 s, 40 s, 90 s compressed as bench/soak.py does
RECOVERY_S = 2.0  # docs/contract.md §11: normal answers within 2 s of PostgreSQL being back
BREAKER_PAUSE_S = 1.0  # BREAKER_PAUSE_SECONDS' default
SENDERS = 6


@dataclass
class Attempt:
    started: float
    elapsed: float
    status: str


@dataclass
class Delivery:
    key: str
    raw: bytes
    headers: dict[str, str]
    attempts: list[Attempt] = field(default_factory=list)


def make_delivery(n: int) -> Delivery:
    message_id = f"wamid.restart-{n}"
    body = {"message": {"id": message_id, "timestamp": str(1_768_000_000 + n), "type": "text",
                        "text": {"body": "halo"}, "kapso": {"direction": "inbound", "status": "received"}},
            "conversation": {"id": "c", "phone_number": f"+62813{n % 50:08d}",
                             "phone_number_id": WORKSPACE["kapso_phone_id"]},
            "phone_number_id": WORKSPACE["kapso_phone_id"]}
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Webhook-Event": "whatsapp.message.received",
               "X-Idempotency-Key": message_id,
               "X-Webhook-Signature": hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()}
    return Delivery(message_id, raw, headers)


@pytest.fixture()
def crashable_postgres(tmp_path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg", free_port())  # durable: it gets crashed
    server.start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        upgrade(conn)
        load_dataset(conn, DEMO)
    yield server
    server.stop("immediate")


def test_worker_recovers_within_2_s_of_a_postgres_restart(gunicorn, env, crashable_postgres):
    pg = crashable_postgres
    # One worker, its pool full (4): after the crash most of its connections sit dead in the pool.
    server = gunicorn(DATABASE_URL=pg.url, KAPSO_WEBHOOK_SECRET=SECRET, WEB_CONCURRENCY="1",
                      DATABASE_POOL_MIN_SIZE="4", DATABASE_POOL_MAX_SIZE="4")
    worker_pids = {c.pid for c in psutil.Process(server.process.pid).children()}
    url = server.url + "/api/webhook/kapso"
    lookup_url = server.url + "/api/contacts/by-phone"
    lookup_params = {"phone": "081234567890", "workspace_id": WORKSPACE["id"]}

    deliveries: list[Delivery] = []
    lookups: list[Attempt] = []
    lock = threading.Lock()
    events: dict[str, float] = {}
    stop_at: list[float] = []

    def send(session: requests.Session, d: Delivery) -> None:
        for attempt in range(len(RETRIES) + 1):
            if attempt:
                time.sleep(RETRIES[attempt - 1])
            started = time.monotonic()
            try:
                status = str(session.post(url, data=d.raw, headers=d.headers, timeout=10).status_code)
            except requests.RequestException as exc:
                status = type(exc).__name__
            d.attempts.append(Attempt(started, time.monotonic() - started, status))
            if status == "200":
                return

    def sender(n: int) -> None:
        session = requests.Session()
        i = 0
        while not stop_at or time.monotonic() < stop_at[0]:
            with lock:
                d = make_delivery(len(deliveries))
                deliveries.append(d)
            send(session, d)
            i += 1
            if n == 0 and i % 3 == 0:
                started = time.monotonic()
                try:
                    status = str(session.get(lookup_url, params=lookup_params,
                                             headers={"x-api-key": env["CRM_API_KEY"]}, timeout=10).status_code)
                except requests.RequestException as exc:
                    status = type(exc).__name__
                lookups.append(Attempt(started, time.monotonic() - started, status))
            time.sleep(0.02)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        events["killed"] = time.monotonic()
        pg.stop("immediate")
        time.sleep(2.4)
        pg.start()
        events["back"] = time.monotonic()
        time.sleep(6.0)
    finally:
        stop_at.append(time.monotonic())
        for thread in threads:
            thread.join()

    back = events["back"]
    attempts = sorted([(a, d.key) for d in deliveries for a in d.attempts] + [(a, "lookup") for a in lookups],
                      key=lambda pair: pair[0].started)
    seen = [(key, a.status, round(a.started - back, 2), round(a.elapsed, 2)) for a, key in attempts
            if a.started >= back - 0.5]
    # The breaker opened during the outage; the first request once its pause is over is its probe, and
    # must close it: a stale pooled connection must not fail the probe and re-open it for another pause.
    first = next((a for a, _ in attempts if a.started >= back + BREAKER_PAUSE_S), None)
    ok = next((a for a, _ in attempts if a.started >= back and a.status == "200"), None)
    assert first is not None and ok is not None, seen[:20]
    assert ok.started + ok.elapsed <= first.started + RECOVERY_S, f"no normal answer in time: {seen[:20]}"
    # Once the worker has answered normally, it keeps doing so: no dead connection handed out, no re-opening.
    late = [(key, a.status, round(a.started - back, 2)) for a, key in attempts
            if a.started >= ok.started + ok.elapsed and a.status != "200"]
    assert not late, f"failed after the worker had recovered: {late[:10]}"
    never = [d.key for d in deliveries if not d.attempts or d.attempts[-1].status != "200"]
    assert not never, f"deliveries never answered 200: {never}"
    with psycopg.connect(pg.url) as conn:
        stored = dict(conn.execute("SELECT kapso_message_id, count(*) FROM messages "
                                   "WHERE kapso_message_id LIKE 'wamid.restart-%' GROUP BY 1").fetchall())
    assert set(stored) == {d.key for d in deliveries} and set(stored.values()) == {1}
    assert {c.pid for c in psutil.Process(server.process.pid).children()} == worker_pids, "a worker restarted"
    assert "Traceback" not in server.log()



def test_dead_pooled_connections_cost_no_answer_after_a_restart(make_app, own_postgres):
    """The pool's idle connections all die with the server: once it is back, the first lookup finds one
    dead and the whole pool is drained, so no caller draws the next dead one (each used to cost a 503)."""
    pg = own_postgres(DEMO)
    app = make_app(DATABASE_URL=pg.url, DATABASE_POOL_MIN_SIZE="4", DATABASE_POOL_MAX_SIZE="4")
    client = app.test_client()
    key = {"x-api-key": app.config["CRM_API_KEY"]}
    params = {"phone": "081234567890", "workspace_id": WORKSPACE["id"]}
    assert client.get("/api/contacts/by-phone", query_string=params, headers=key).status_code == 200
    pool = app.extensions["kontak.db"].pool
    wait_until(lambda: pool.get_stats().get("pool_available", 0) == 4, 10, "four idle pooled connections")
    pg.stop("immediate")
    pg.start()
    answers = [client.get("/api/contacts/by-phone", query_string=params, headers=key).status_code
               for _ in range(4)]
    assert answers == [200] * 4


def test_every_worker_answers_within_1_s_of_the_first_200_after_a_restart(gunicorn, env, crashable_postgres):
    """Two workers, 16 looping clients, PostgreSQL stopped and started: once any worker answers 200 again,
    no 503 comes later than 1 s after it (each worker's first dead pooled connection drains its pool and
    the call is made again on a fresh one, so no breaker probe fails on a stale connection)."""
    pg = crashable_postgres
    server = gunicorn(DATABASE_URL=pg.url, WEB_CONCURRENCY="2", DATABASE_POOL_MIN_SIZE="4",
                      DATABASE_POOL_MAX_SIZE="4")
    params = {"phone": "081234567890", "workspace_id": WORKSPACE["id"]}
    answers: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = session.get(server.url + "/api/contacts/by-phone", params=params, timeout=10,
                                     headers={"x-api-key": env["CRM_API_KEY"]}).status_code
            except requests.RequestException:
                status = 0
            answers.append((started, time.monotonic(), status))
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        pg.stop("immediate")
        back_at = time.monotonic() + 2.0
        time.sleep(2.0)
        pg.start()
        wait_until(lambda: any(start >= back_at and status == 200 for start, _, status in answers), 15,
                   "a 200 after the restart")
        time.sleep(4.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    first_ok = min(end for start, end, status in answers if start >= back_at and status == 200)
    late = [(round(start - first_ok, 2), status) for start, _, status in answers
            if start > first_ok + 1.0 and status != 200]
    assert not late, f"answers other than 200 more than 1 s after the first 200: {late[:10]}"
    assert "Traceback" not in server.log()


def test_a_dead_pooled_connection_costs_no_failure_and_no_breaker_count(make_app, own_postgres):
    """After a restart every idle pooled connection is dead. The first call to find one drains the pool
    and runs again on a fresh connection inside the same breaker call: a webhook write answers 200 (it
    used to answer 503: writes were not retried) and the breaker counts no failure, so a worker that was
    idle through the outage never re-opens for another pause."""
    pg = own_postgres(DEMO)
    app = make_app(DATABASE_URL=pg.url, KAPSO_WEBHOOK_SECRET=SECRET, DATABASE_POOL_MIN_SIZE="4",
                   DATABASE_POOL_MAX_SIZE="4")
    client = app.test_client()
    db = app.extensions["kontak.db"]
    first = make_delivery(1)
    assert client.post("/api/webhook/kapso", data=first.raw, headers=first.headers).status_code == 200
    wait_until(lambda: db.pool.get_stats().get("pool_available", 0) == 4, 10, "four idle pooled connections")
    pg.stop("immediate")
    pg.start()
    second = make_delivery(2)
    answer = client.post("/api/webhook/kapso", data=second.raw, headers=second.headers)
    assert (answer.status_code, answer.get_json()["stored"]) == (200, 1)
    assert db.guard.breaker._failures == 0, "the dead connection was counted as a backend failure"
