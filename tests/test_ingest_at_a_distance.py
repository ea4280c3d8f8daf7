"""A valid delivery is stored whatever the distance to the database (docs/contract.md §11).

Ingestion costs the same few round trips for one sender and for a thousand
(migrations/0007 `kontak_ingest`), so a large batch through a 10 ms-each-way
network is stored within the write deadline on the first try, and the
timing line counts the same round trips as for a single event.
"""

from __future__ import annotations

import json

from helpers import WORKSPACE, sign

SECRET = "whsec-distance-9a1c"
PNID = "pnid-distance-1"
T0 = 1_767_000_000


def batch(senders: int) -> bytes:
    events = [{"message": {"id": f"wamid.far.{n}", "timestamp": str(T0 + n), "type": "text",
                           "text": {"body": "halo"}, "kapso": {"direction": "inbound"}},
               "conversation": {"phone_number": f"+62815{n:08d}", "phone_number_id": PNID,
                                "kapso": {"contact_name": f"S{n}"}},
               "phone_number_id": PNID} for n in range(senders)]
    return json.dumps({"type": "whatsapp.message.received", "batch": True, "data": events}).encode()


def test_a_1000_sender_batch_10_ms_away_is_stored_on_the_first_try_in_as_many_round_trips_as_one(
        load, db, postgres, make_app, slowed_proxy, timing_lines):
    load({"workspaces": [{"id": WORKSPACE, "name": "Far", "kapso_phone_id": PNID}], "contacts": []})
    proxy = slowed_proxy(postgres.url, 0.010)
    far = postgres.url.replace(f":{postgres.url.rsplit(':', 1)[1].split('/')[0]}", f":{proxy.port}", 1)
    client = make_app(DATABASE_URL=far, KAPSO_WEBHOOK_SECRET=SECRET).test_client()
    queries = []
    for senders in (1, 1000):
        raw = batch(senders)
        response = client.post("/api/webhook/kapso", data=raw, headers={
            "Content-Type": "application/json", "X-Webhook-Event": "whatsapp.message.received",
            "X-Webhook-Signature": sign(raw, SECRET)})
        assert response.status_code == 200, response.data
        assert response.get_json()["stored"] + response.get_json()["duplicates"] == senders
        queries.append(int(timing_lines()[-1].split(" queries=")[1].split()[0]))
    assert queries[0] == queries[1] <= 12, queries
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 1000
    assert db.execute("SELECT count(*) FROM messages WHERE kapso_message_id LIKE 'wamid.far.%'").fetchone()[0] == 1000
