"""The two lookup routes answer equal JSON and status on the same data (docs/contract.md §3).

One data set goes into PostgreSQL directly and into Convex through its bulk
import; every case is then asked of both routes.
"""

from __future__ import annotations

import json

import pytest
import requests

from commands.compare.probes import phone_forms
from helpers import API_KEY, LIVE_SECRET, OTHER_WORKSPACE, WORKSPACE, load_contract, sign, wait_until
from helpers import PARITY_MESSAGES as MESSAGES


def _messages(count: int, day: int) -> list[dict]:
    return [{"direction": "inbound" if i % 3 else "outbound", "content": MESSAGES[i % len(MESSAGES)],
             "message_type": "text", "kapso_message_id": f"wamid.parity-{day}-{i}", "status": "received",
             # pairs of equal times: insertion order must break the tie the same way
             "created_at": f"2026-02-{day:02d}T10:{i // 2:02d}:00.000Z"} for i in range(count)]


def _contact(phone: str, workspace: str = WORKSPACE, *, name: str | None = "Nama Lengkap",
             kapso_name: str | None = None, notes: int = 0, messages: int | None = None, day: int = 1) -> dict:
    conversation = None
    if messages is not None:
        msgs = _messages(messages, day)
        conversation = {"status": "open", "unread_count": 1, "created_at": "2026-02-01T00:00:00.000Z",
                        "last_message_at": msgs[-1]["created_at"] if msgs else None,
                        "last_message_preview": msgs[-1]["content"] if msgs else None, "messages": msgs}
    return {"workspace_id": workspace, "phone": phone, "name": name, "kapso_name": kapso_name,
            "email": None, "lead_status": "warm", "lead_score": 42 + day, "tags": ["a", "b"][: day % 3],
            "created_at": f"2026-01-{day:02d}T01:02:03.456Z", "updated_at": f"2026-01-{day:02d}T01:02:03.456Z",
            "notes": [{"content": f"note {n}", "created_at": f"2026-01-2{n // 3}T00:00:00.000Z"} for n in range(notes)],
            "conversation": conversation}


DATASET = {
    "workspaces": [{"id": WORKSPACE, "name": "A", "kapso_phone_id": "parity-a"},
                   {"id": OTHER_WORKSPACE, "name": "B", "kapso_phone_id": None}],
    "contacts": [
        _contact("+6281234567890", notes=7, messages=15, day=1),
        _contact("+6281200000001", notes=1, messages=3, day=2),
        _contact("+6281200000002", notes=0, messages=0, day=3),
        _contact("+6281200000003", name=None, kapso_name="Profil WA", day=4),
        _contact("+6281200000004", name="", kapso_name="Hanya Profil", notes=1, messages=3, day=5),
        _contact("+6281200000005", name=None, kapso_name=None, messages=15, day=6),
        _contact("+15551234567", notes=7, messages=3, day=7),
        _contact("+6281234567890", OTHER_WORKSPACE, name="Tenant B", notes=1, messages=15, day=8),
    ],
}
CASES = [(form, text, contact["workspace_id"]) for contact in DATASET["contacts"]
         for form, text in phone_forms(contact["phone"])]
CASES += [("not found", "+6289999999999", WORKSPACE), ("other workspace", "+6281200000001", OTHER_WORKSPACE),
          ("unknown workspace", "+6281234567890", "99999999-9999-4999-8999-999999999999"),
          ("invalid phone", "0812-ABC", WORKSPACE), ("invalid workspace", "+6281234567890", "nope"),
          ("missing phone", "", WORKSPACE)]


@pytest.fixture()
def both_loaded(load, convex):
    load(DATASET)
    counts = convex.import_dataset(DATASET)
    assert counts["contacts"] == len(DATASET["contacts"]) and counts["messages"] == 15 * 3 + 3 * 3 + 0


def test_every_case_answers_equally(client, auth, both_loaded):
    found = 0
    for label, phone, workspace in CASES:
        params = {"phone": phone, "workspace_id": workspace}
        a = client.get("/api/contacts/by-phone", query_string=params, headers=auth)
        b = client.get("/api/contacts/by-phone-convex", query_string=params, headers=auth)
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()), f"{label} {phone} {workspace}"
        found += bool(a.status_code == 200 and a.get_json()["found"])
    assert found == len(CASES) - 6


def test_the_cases_exercise_the_rules(client, auth, both_loaded):
    body = client.get("/api/contacts/by-phone-convex", headers=auth,
                      query_string={"phone": "081234567890", "workspace_id": WORKSPACE}).get_json()
    assert len(body["notes"]) == 5 and body["notes"][0] == "note 6"
    assert body["conversation_summary"].startswith("Discussed: ")
    profile = client.get("/api/contacts/by-phone-convex", headers=auth,
                         query_string={"phone": "+6281200000004", "workspace_id": WORKSPACE}).get_json()
    assert profile["contact"]["name"] == "Hanya Profil"
    tenant_b = client.get("/api/contacts/by-phone-convex", headers=auth,
                          query_string={"phone": "+6281234567890", "workspace_id": OTHER_WORKSPACE}).get_json()
    assert tenant_b["contact"]["name"] == "Tenant B"


def test_unauthorised_and_unconfigured_are_equal(client, both_loaded):
    for headers in ({}, {"x-api-key": "wrong"}):
        a = client.get("/api/contacts/by-phone", headers=headers)
        b = client.get("/api/contacts/by-phone-convex", headers=headers)
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()) == (401, {"error": "Unauthorized"})


def test_convex_route_through_gunicorn_logs_its_line(gunicorn, both_loaded):
    server = gunicorn()
    with requests.Session() as session:
        for _ in range(3):
            response = session.get(server.url + "/api/contacts/by-phone-convex", headers={"x-api-key": API_KEY},
                                   params={"phone": "+62 812-3456-7890", "workspace_id": WORKSPACE}, timeout=5)
            assert response.status_code == 200 and response.json()["found"] is True
    wait_until(lambda: server.log().count("backend=convex") >= 3, 5, "three timing lines in gunicorn's log")
    lines = [line for line in server.log().splitlines() if "backend=convex" in line]
    assert len(lines) == 3 and all("queries=1" in line and "found=true" in line for line in lines)
    assert all("phone=+62812****890" in line for line in lines)


def test_the_same_deliveries_to_both_webhooks_give_equal_lookups(make_app, load, convex, standin):
    """Every documented payload shape, signed, posted to the Flask webhook and to the Convex one."""
    scenario = load_contract("webhook_scenario.json")
    load(scenario["dataset"])
    convex.import_dataset(scenario["dataset"])
    client = make_app(KAPSO_WEBHOOK_SECRET=LIVE_SECRET).test_client()
    for delivery in scenario["deliveries"]:
        raw = json.dumps(delivery["body"]).encode()
        headers = {**delivery["headers"], "Content-Type": "application/json",
                   "X-Webhook-Signature": sign(raw, LIVE_SECRET)}
        flask_answer = client.post("/api/webhook/kapso", data=raw, headers=headers).get_json()
        convex_answer = requests.post(standin.url + "/webhook/kapso", data=raw, headers=headers, timeout=10).json()
        assert flask_answer == convex_answer == {"received": True, **delivery["expect"]}, delivery["name"]
    phones = [lookup["phone"] for lookup in scenario["lookups"]] + ["15551234567", "+62 812-9876-5432"]
    for phone in phones:
        params = {"phone": phone, "workspace_id": scenario["dataset"]["workspaces"][0]["id"]}
        a = client.get("/api/contacts/by-phone", query_string=params, headers={"x-api-key": API_KEY})
        b = client.get("/api/contacts/by-phone-convex", query_string=params, headers={"x-api-key": API_KEY})
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()), phone
    first = client.get("/api/contacts/by-phone-convex", headers={"x-api-key": API_KEY},
                       query_string={"phone": "6281298765432", "workspace_id": params["workspace_id"]}).get_json()
    assert first["contact"]["name"] == "Dewi" and first["contact"]["first_contact_date"] == "2026-01-20T09:11:40.000Z"
