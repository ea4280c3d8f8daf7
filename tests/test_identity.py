"""WhatsApp identity beyond the phone number on the Flask side (docs/contract.md §4a, docs/webhook.md §7).

The replay corpus holds the cases both backends must agree on; these tests try
what only the PostgreSQL side can show: the merge of a CRM contact holding
notes and fields, one round trip for a lookup by BSUID, identity changes, and
what the lookup's parameters refuse.
"""

from __future__ import annotations

import json

import pytest

from helpers import API_KEY, WORKSPACE, sign

SECRET = "whsec-identity-2d7e"
PNID = "pnid-identity-1"
PHONE = "+6281300000123"
BSUID = "ID.55500011122233"
USERNAME = "budi.username"
T0 = 1_766_000_000


def crm_contact() -> dict:
    """A contact the CRM holds by phone, with fields, notes and a conversation."""
    return {
        "workspace_id": WORKSPACE, "phone": PHONE, "name": "Budi CRM", "kapso_name": None, "email": "b@example.com",
        "lead_status": "hot", "lead_score": 70, "tags": ["vip"],
        "created_at": "2025-12-01T00:00:00.000Z", "updated_at": "2025-12-02T00:00:00.000Z",
        "notes": [{"content": "Called twice", "created_at": "2025-12-01T01:00:00.000Z"}],
        "conversation": {"status": "open", "unread_count": 0, "last_message_at": "2025-12-01T02:00:00.000Z",
                         "last_message_preview": "halo", "created_at": "2025-12-01T00:00:00.000Z",
                         "messages": [{"direction": "inbound", "content": "halo", "message_type": "text",
                                       "kapso_message_id": "wamid.crm.1", "status": "received",
                                       "created_at": "2025-12-01T02:00:00.000Z"}]},
    }


@pytest.fixture()
def world(load, make_app):
    load({"workspaces": [{"id": WORKSPACE, "name": "Identity", "kapso_phone_id": PNID}], "contacts": [crm_contact()]})
    return make_app(KAPSO_WEBHOOK_SECRET=SECRET).test_client()


def message(n: int, text: str, phone: str | None = None, bsuid: str | None = None) -> dict:
    conversation = {"phone_number_id": PNID, "username": USERNAME, "kapso": {"contact_name": "Budi WA"}}
    conversation.update({"phone_number": phone} if phone else {})
    conversation.update({"business_scoped_user_id": bsuid} if bsuid else {})
    return {"message": {"id": f"wamid.id.{n}", "timestamp": str(T0 + n), "type": "text", "text": {"body": text},
                        "kapso": {"direction": "inbound"}},
            "conversation": conversation, "phone_number_id": PNID}


def post(client, body: dict, event: str = "whatsapp.message.received") -> dict:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Webhook-Event": event,
               "X-Hub-Signature-256": "sha256=" + sign(raw, SECRET)}  # Meta's header, as Kapso forwards it
    response = client.post("/api/webhook/kapso", data=raw, headers=headers)
    assert response.status_code == 200, response.data
    return response.get_json()


def lookup(client, **params: str) -> dict:
    response = client.get("/api/contacts/by-phone", query_string={**params, "workspace_id": WORKSPACE},
                          headers={"x-api-key": API_KEY})
    assert response.status_code == 200, response.data
    return response.get_json()


def test_a_bsuid_only_sender_is_stored_and_found_by_bsuid_with_the_username_as_last_name(world, db):
    db.execute("UPDATE contacts SET name = NULL")
    answer = post(world, message(1, "halo kak", bsuid="ID.77700011122233"))
    assert answer == {"received": True, "stored": 1, "duplicates": 0, "ignored": 0}
    found = lookup(world, bsuid="ID.77700011122233")
    assert found["found"] is True and found["contact"]["name"] == "Budi WA"
    db.execute("UPDATE contacts SET kapso_name = NULL WHERE bsuid = 'ID.77700011122233'")
    assert lookup(world, bsuid="ID.77700011122233")["contact"]["name"] == USERNAME
    assert db.execute("SELECT phone FROM contacts WHERE bsuid = 'ID.77700011122233'").fetchone() == (None,)


def test_a_delivery_naming_both_merges_the_bsuid_contact_into_the_older_crm_contact(world, db):
    post(world, message(1, "saya mau tanya beasiswa", bsuid=BSUID))
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 2
    merge = message(2, "visa juga", phone="0813-0000-0123", bsuid=BSUID)
    assert post(world, merge)["stored"] == 1
    rows = db.execute("SELECT phone, bsuid, name, kapso_name, username, lead_status, lead_score, tags, email "
                      "FROM contacts").fetchall()
    assert rows == [(PHONE, BSUID, "Budi CRM", "Budi WA", USERNAME, "hot", 70, ["vip"], "b@example.com")]
    by_phone, by_bsuid = lookup(world, phone=PHONE), lookup(world, bsuid=BSUID)
    assert by_phone == by_bsuid
    assert by_phone["notes"] == ["Called twice"]
    assert by_phone["contact"]["first_contact_date"] == "2025-12-01T00:00:00.000Z"
    assert by_phone["conversation_summary"] == "Discussed: Visa, Scholarship"
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    before = db.execute("SELECT * FROM contacts").fetchall()
    assert post(world, merge) == {"received": True, "stored": 0, "duplicates": 1, "ignored": 0}
    assert db.execute("SELECT * FROM contacts").fetchall() == before


def test_identity_changes_move_the_phone_and_the_bsuid(world, db):
    post(world, message(1, "halo", phone=PHONE, bsuid=BSUID))
    change = message(2, "", bsuid=BSUID)
    change["message"].update(type="system", system={"type": "user_changed_number", "wa_id": "6281399999999"})
    assert post(world, change)["stored"] == 1
    assert lookup(world, phone="+6281399999999")["found"] is True
    assert lookup(world, phone=PHONE) == {"found": False, "context": None}
    change = message(3, "", phone="+6281399999999")
    change["message"].update(type="system", system={"type": "user_changed_user_id", "user_id": "ID.42"})
    assert post(world, change)["stored"] == 1
    assert db.execute("SELECT phone, bsuid FROM contacts").fetchall() == [("+6281399999999", "ID.42")]
    assert post(world, change)["duplicates"] == 1


def test_a_lookup_by_bsuid_is_one_round_trip_and_logs_it_masked(world, db, timing_lines):
    db.execute("UPDATE contacts SET bsuid = %s", (BSUID,))
    assert lookup(world, bsuid=BSUID)["found"] is True
    assert lookup(world, bsuid=BSUID, phone="+6289999999999")["found"] is True  # BSUID first
    lines = timing_lines()
    assert all(" queries=1 " in line for line in lines), lines
    assert " bsuid=ID.555****233 " in lines[0] and BSUID not in "\n".join(lines)


@pytest.mark.parametrize(("params", "error"), [
    ({}, "Missing phone parameter"),
    ({"bsuid": "  "}, "Missing phone parameter"),
    ({"bsuid": "id.123"}, "Invalid bsuid"),
    ({"bsuid": "ID.ENT.123"}, "Invalid bsuid"),
    ({"bsuid": "ID." + "1" * 129}, "Invalid bsuid"),
    ({"bsuid": "ID.12-3", "phone": "x"}, "Invalid bsuid"),
    ({"bsuid": "ID.123", "phone": "x"}, "Invalid phone number"),
])
@pytest.mark.parametrize("route", ["/api/contacts/by-phone", "/api/contacts/by-phone-convex"])
def test_lookup_parameters_are_refused_alike_on_both_routes(world, route, params, error):
    response = world.get(route, query_string={**params, "workspace_id": WORKSPACE}, headers={"x-api-key": API_KEY})
    assert (response.status_code, response.get_json()) == (400, {"error": error})
