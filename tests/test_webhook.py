"""POST /api/webhook/kapso into PostgreSQL (docs/contract.md §7), on the shared scenario."""

from __future__ import annotations

import json

import pytest

from helpers import API_KEY, WEBHOOK_SECRET, load_contract
from helpers import sign as sign_with

SECRET = WEBHOOK_SECRET
URL = "/api/webhook/kapso"
SCENARIO = load_contract("webhook_scenario.json")


def sign(body: bytes, secret: str = SECRET) -> str:
    return sign_with(body, secret)


@pytest.fixture()
def client(make_app):
    return make_app(KAPSO_WEBHOOK_SECRET=SECRET).test_client()


def post(client, body, headers=None, signature=True):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    if signature:
        headers["X-Webhook-Signature"] = sign(raw)
    return client.post(URL, data=raw, headers=headers)


@pytest.fixture()
def scenario_loaded(load):
    load(SCENARIO["dataset"])


def stored_messages(db):
    rows = db.execute(
        """SELECT kapso_message_id, direction, content, message_type, status,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
           FROM messages ORDER BY id""").fetchall()
    keys = ["kapso_message_id", "direction", "content", "message_type", "status", "created_at"]
    return [dict(zip(keys, row, strict=True)) for row in rows]


def test_scenario(client, db, scenario_loaded):
    for delivery in SCENARIO["deliveries"]:
        response = post(client, delivery["body"], delivery["headers"])
        assert response.status_code == 200, delivery["name"]
        assert response.get_json() == {"received": True, **delivery["expect"]}, delivery["name"]
    assert stored_messages(db) == SCENARIO["messages"]
    conversations = db.execute(
        """SELECT c.phone, v.unread_count,
                  to_char(v.last_message_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                  v.last_message_preview
           FROM conversations v JOIN contacts c ON c.id = v.contact_id ORDER BY v.created_at""").fetchall()
    assert [dict(zip(["phone", "unread_count", "last_message_at", "last_message_preview"], row, strict=True))
            for row in conversations] == SCENARIO["conversations"]
    for lookup in SCENARIO["lookups"]:
        response = client.get("/api/contacts/by-phone", headers={"x-api-key": API_KEY},
                              query_string={"phone": lookup["phone"], "workspace_id": lookup["workspace_id"]})
        assert response.get_json() == lookup["expect"], lookup["phone"]


def test_same_delivery_three_times_is_stored_once(client, db, scenario_loaded):
    delivery = SCENARIO["deliveries"][0]
    answers = [post(client, delivery["body"], delivery["headers"]).get_json() for _ in range(3)]
    assert [(a["stored"], a["duplicates"]) for a in answers] == [(1, 0), (0, 1), (0, 1)]
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert db.execute("SELECT unread_count FROM conversations").fetchone()[0] == 1


def test_legacy_signature_header_and_api_key_are_accepted(client, db, scenario_loaded):
    raw = json.dumps(SCENARIO["deliveries"][0]["body"]).encode()
    response = client.post(URL, data=raw, headers={"X-Kapso-Signature": sign(raw)})
    assert response.status_code == 200
    raw2 = json.dumps(SCENARIO["deliveries"][2]["body"]).encode()
    response = client.post(URL, data=raw2, headers={"x-api-key": API_KEY, "X-Webhook-Event": "whatsapp.message.sent"})
    assert response.get_json()["stored"] == 1


@pytest.mark.parametrize("headers", [
    {},
    {"X-Webhook-Signature": "0" * 64},
    {"X-Webhook-Signature": "not hex at all"},
    {"X-Kapso-Signature": sign(b"another body")},
    {"x-api-key": "wrong"},
])
def test_bad_signature_or_key_is_401_and_stores_nothing(client, db, scenario_loaded, headers):
    raw = json.dumps(SCENARIO["deliveries"][0]["body"]).encode()
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_signature_with_the_wrong_secret(client, db, scenario_loaded):
    raw = json.dumps(SCENARIO["deliveries"][0]["body"]).encode()
    assert client.post(URL, data=raw, headers={"X-Webhook-Signature": sign(raw, "other")}).status_code == 401


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "Invalid JSON"),
    (b"\xff\xfe\x00", "Invalid JSON"),
    (b"[" * 100000 + b"]" * 100000, "Invalid JSON"),
    (b"", "Invalid JSON"),
    (b"[]", "Body must be a JSON object"),
    (b'"text"', "Body must be a JSON object"),
    (b"null", "Body must be a JSON object"),
    (b"12", "Body must be a JSON object"),
])
def test_bad_bodies_are_400(client, db, scenario_loaded, raw, message):
    response = post(client, raw)
    assert response.status_code == 400 and response.get_json() == {"error": message}
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


@pytest.mark.parametrize("body", [
    {"object": "whatsapp_business_account", "entry": [{"changes": 5}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": "ab", "contacts": 7}}]}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "contacts": [{"wa_id": ["x"]}], "messages": [{"id": "m", "from": ["x"], "timestamp": "5"}]}}]}]},
    {"message": {"id": 5, "timestamp": True, "kapso": []}, "conversation": "x"},
])
def test_odd_values_where_lists_or_strings_belong_are_ignored(client, db, scenario_loaded, body):
    response = post(client, body)
    assert response.status_code == 200 and response.get_json()["stored"] == 0


def test_body_over_one_mebibyte_is_413(client, db, scenario_loaded):
    body = dict(SCENARIO["deliveries"][0]["body"], padding="x" * (1024 * 1024))
    response = post(client, body)
    assert response.status_code == 413 and response.get_json() == {"error": "Payload too large"}


def test_nul_characters_are_dropped(client, db, scenario_loaded):
    body = json.loads(json.dumps(SCENARIO["deliveries"][0]["body"]))
    body["message"]["text"]["body"] = "vi\u0000sa"
    assert post(client, body).get_json()["stored"] == 1
    assert db.execute("SELECT content FROM messages").fetchone()[0] == "visa"


def test_nothing_partial_is_stored_when_a_batch_fails(client, db, scenario_loaded):
    """The database refuses the last message of a batch: the whole request rolls back."""
    db.execute("""CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN IF NEW.content = '[audio]' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$""")
    db.execute("CREATE TRIGGER refuse_boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_boom()")
    try:
        batch = SCENARIO["deliveries"][4]
        response = post(client, batch["body"], batch["headers"])
        assert response.status_code == 502 and response.get_json() == {"error": "Backend error"}
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0
    finally:
        db.execute("DROP TRIGGER refuse_boom ON messages")
        db.execute("DROP FUNCTION refuse_boom()")
    assert post(client, batch["body"], batch["headers"]).get_json()["stored"] == 4


def test_hub_challenge(client):
    response = client.get(URL, query_string={"hub.mode": "subscribe", "hub.challenge": "12345"})
    assert response.status_code == 200 and response.mimetype == "text/plain" and response.data == b"12345"
    assert client.get(URL).get_json() == {"error": "Missing hub.challenge parameter"}


def test_not_configured(make_app, db):
    app = make_app(CRM_API_KEY="", KAPSO_WEBHOOK_SECRET="")
    response = app.test_client().post(URL, data=b"{}")
    assert response.status_code == 500 and response.get_json() == {"error": "Service not configured"}


def test_timing_line_for_the_webhook(client, scenario_loaded, timing_lines):
    delivery = SCENARIO["deliveries"][0]
    post(client, delivery["body"], delivery["headers"])
    [line] = timing_lines()
    assert line.startswith("timing route=/api/webhook/kapso backend=supabase method=POST status=200 found=-")
    assert "Hi, I want" not in line and SECRET not in line
