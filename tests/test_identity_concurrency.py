"""Concurrent deliveries naming the same people by phone, by BSUID and by both (docs/webhook.md §7).

20 batches at once against real gunicorn and real PostgreSQL. In every batch each
person sends three messages, one phone-only, one BSUID-only and one carrying
both, in an order that differs from batch to batch, and message ids overlap
the next batches'. So the batches race to create, link and merge the same
people. Every delivery must end with a 200, every person be one contact with
both identifiers, and every message be stored once. The same deliveries, fed
one by one to the Convex webhook, must leave Convex answering every lookup
(by phone and by BSUID) with the same JSON as PostgreSQL.

Each person's messages share one time and one text, so the answer does not
depend on which racing delivery stored which message first.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from helpers import API_KEY, CONVEX_ROUTE, LIVE_SECRET, PG_ROUTE, WORKSPACE, sign

PNID = "pnid-identity-race-1"
PEOPLE = [(f"+62812000002{j:02d}", f"ID.9876543210{j:02d}", f"user_{j}_race", f"Orang {j}") for j in range(4)]
BATCHES = 20
RETRIES = 3
T0 = 1_765_000_000
HEADERS = {"Content-Type": "application/json", "X-Webhook-Batch": "true",
           "X-Webhook-Event": "whatsapp.message.received"}


def event(person: int, n: int, variant: int) -> dict:
    """Message n of a person, naming them by phone only (0), BSUID only (1) or both (2)."""
    phone, bsuid, username, name = PEOPLE[person]
    conversation = {"phone_number_id": PNID, "kapso": {"contact_name": name}, "username": username}
    if variant != 1:
        conversation["phone_number"] = phone
    if variant != 0:
        conversation["business_scoped_user_id"] = bsuid
    return {"message": {"id": f"wamid.race.{person}.{n}", "timestamp": str(T0 + person), "type": "text",
                        "text": {"body": "mau tanya visa kanada"}, "kapso": {"direction": "inbound"}},
            "conversation": conversation, "phone_number_id": PNID}


def batch(i: int) -> bytes:
    items = [event(j, i + k, (i + j + k) % 3) for j in range(len(PEOPLE)) for k in range(3)]
    if i % 2:
        items.reverse()
    return json.dumps({"type": "whatsapp.message.received", "batch": True, "data": items}).encode()


def deliver(url: str, raw: bytes, start: threading.Barrier | None = None) -> tuple[list[int], dict]:
    """Kapso's sender: post, retry a non-200 at most RETRIES times."""
    headers = {**HEADERS, "X-Webhook-Signature": sign(raw, LIVE_SECRET)}
    if start is not None:
        start.wait()
    statuses: list[int] = []
    for _ in range(1 + RETRIES):
        response = requests.post(url, data=raw, headers=headers, timeout=30)
        statuses.append(response.status_code)
        if response.status_code == 200:
            return statuses, response.json()
    return statuses, {}


def test_racing_deliveries_by_phone_and_bsuid_make_one_contact_per_person_on_both_backends(
        gunicorn, load, db, convex, standin):
    workspace = {"workspaces": [{"id": WORKSPACE, "name": "Identity race", "kapso_phone_id": PNID}], "contacts": []}
    load(workspace)
    server = gunicorn(KAPSO_WEBHOOK_SECRET=LIVE_SECRET)
    bodies = [batch(i) for i in range(BATCHES)]
    start = threading.Barrier(BATCHES)
    with ThreadPoolExecutor(BATCHES) as pool:
        results = list(pool.map(lambda raw: deliver(server.url + "/api/webhook/kapso", raw, start), bodies))
    assert [statuses[-1] for statuses, _ in results] == [200] * BATCHES, [s for s, _ in results]
    expected_ids = {item["message"]["id"] for raw in bodies for item in json.loads(raw)["data"]}
    assert sum(answer["stored"] for _, answer in results) == len(expected_ids)

    contacts = db.execute("SELECT phone, bsuid, username, kapso_name, extract(epoch FROM created_at)::bigint "
                          "FROM contacts ORDER BY phone").fetchall()
    assert contacts == [(p, b, u, n, T0 + j) for j, (p, b, u, n) in enumerate(PEOPLE)]
    rows = db.execute("SELECT kapso_message_id, count(*) FROM messages GROUP BY 1").fetchall()
    assert {mid for mid, _ in rows} == expected_ids and all(count == 1 for _, count in rows)
    per_person = db.execute("""SELECT c.phone, count(m.id) FROM contacts c JOIN conversations v ON v.contact_id = c.id
                               JOIN messages m ON m.conversation_id = v.id GROUP BY 1""").fetchall()
    assert sorted(n for _, n in per_person) == [len(expected_ids) // len(PEOPLE)] * len(PEOPLE)

    convex.clear()
    convex.import_dataset(workspace)
    for raw in bodies:
        statuses, _ = deliver(standin.url + "/webhook/kapso", raw)
        assert statuses == [200]
    key = {"x-api-key": API_KEY}
    for phone, bsuid, _username, _name in PEOPLE:
        for params in ({"phone": phone}, {"bsuid": bsuid}, {"phone": phone, "bsuid": bsuid}):
            query = {**params, "workspace_id": WORKSPACE}
            on_postgres = requests.get(server.url + PG_ROUTE, params=query, headers=key, timeout=10)
            on_convex = requests.get(server.url + CONVEX_ROUTE, params=query, headers=key, timeout=10)
            assert on_postgres.status_code == on_convex.status_code == 200
            assert on_postgres.json()["found"] is True
            assert on_postgres.content == on_convex.content, params
    assert "Traceback" not in server.log()
