"""Concurrent deliveries against real gunicorn and real PostgreSQL never deadlock (docs/webhook.md §5).

20 batches at once, each naming the same senders in one of two opposite
orders, replaying messages of other batches: each sender retries a non-200
at most 3 times, as Kapso would (without its pauses). Every delivery must end
with a 200 and every message be stored exactly once. Opposite orders are what
would deadlock a store that locked senders as it met them.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from helpers import WORKSPACE, sign

SECRET = "whsec-concurrency-51c0"
PNID = "pnid-concurrency-1"
SENDERS = ["+6281200000101", "+6281200000102", "+6281200000103", "+6281200000104"]
BATCHES = 20
PER_SENDER = 3  # messages of each sender in each batch
RETRIES = 3
T0 = 1_760_000_000


def message_id(sender: str, n: int) -> str:
    return f"wamid.{sender[-3:]}.{n}"


def event(sender: str, n: int) -> dict:
    return {
        "message": {"id": message_id(sender, n), "timestamp": str(T0 + n), "type": "text",
                    "text": {"body": f"pesan {n}"}, "from": sender.lstrip("+"),
                    "kapso": {"direction": "inbound", "status": "received"}},
        "conversation": {"phone_number": sender, "phone_number_id": PNID, "kapso": {"contact_name": f"S{sender[-1]}"}},
        "phone_number_id": PNID,
    }


def batch(i: int, first: int) -> dict:
    """Batch i: senders in order (even i) or reversed (odd i); message numbers overlap the next batches'."""
    senders = SENDERS if i % 2 == 0 else SENDERS[::-1]
    return {"type": "whatsapp.message.received", "batch": True,
            "data": [event(s, first + i + k) for s in senders for k in range(PER_SENDER)]}


def deliver(url: str, body: dict, start: threading.Barrier) -> tuple[list[int], dict]:
    """Kapso's sender: post, retry a non-200 at most RETRIES times; every status seen and the last answer."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Webhook-Batch": "true",
               "X-Webhook-Event": "whatsapp.message.received", "X-Webhook-Signature": sign(raw, SECRET)}
    start.wait()
    statuses: list[int] = []
    for _ in range(1 + RETRIES):
        response = requests.post(url + "/api/webhook/kapso", data=raw, headers=headers, timeout=30)
        statuses.append(response.status_code)
        if response.status_code == 200:
            return statuses, response.json()
    return statuses, {}


def deliver_all(url: str, bodies: list[dict]) -> list[tuple[list[int], dict]]:
    start = threading.Barrier(len(bodies))
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: deliver(url, body, start), bodies))


def test_concurrent_batches_in_opposite_orders_all_end_200_and_store_each_message_once(gunicorn, load, db):
    load({"workspaces": [{"id": WORKSPACE, "name": "Concurrency", "kapso_phone_id": PNID}], "contacts": []})
    server = gunicorn(KAPSO_WEBHOOK_SECRET=SECRET)
    expected: set[str] = set()
    stored_total = 0
    # Round 1 creates the contacts concurrently; round 2 locks existing ones and replays round 1's tail.
    for first in (0, BATCHES):
        bodies = [batch(i, first) for i in range(BATCHES)]
        results = deliver_all(server.url, bodies)
        assert [statuses[-1] for statuses, _ in results] == [200] * BATCHES, [s for s, _ in results]
        for body, (_, answer) in zip(bodies, results, strict=True):
            assert answer["stored"] + answer["duplicates"] == len(body["data"]) and answer["ignored"] == 0
            stored_total += answer["stored"]
        expected |= {item["message"]["id"] for body in bodies for item in body["data"]}
        # Each message stored exactly once: the answers' stored counts add up to the distinct ids.
        assert stored_total == len(expected)

    rows = db.execute("SELECT kapso_message_id, count(*) FROM messages GROUP BY 1").fetchall()
    assert {mid for mid, _ in rows} == expected and all(n == 1 for _, n in rows)
    per_sender = len(expected) // len(SENDERS)
    conversations = db.execute(
        """SELECT c.phone, c.kapso_name, v.unread_count, extract(epoch FROM v.last_message_at)::bigint,
                  (SELECT count(*) FROM messages m WHERE m.conversation_id = v.id)
           FROM contacts c JOIN conversations v ON v.contact_id = c.id ORDER BY c.phone""").fetchall()
    last = T0 + 2 * BATCHES - 1 + PER_SENDER - 1
    assert conversations == [(s, f"S{s[-1]}", per_sender, last, per_sender) for s in SENDERS]
    assert "Traceback" not in server.log()
