"""PII-safe logs (docs/contract.md §6), each test with traffic of its own, in any order.

Every test of the suite is checked after it runs by conftest's autouse
`logs_hold_no_secrets` (what that test made Kontak's loggers, gunicorn and
the stand-in write). The tests here make the traffic most likely to leak
(every phone form, signed and keyed webhooks with message text, workspace
keys, both routes through gunicorn) and check that it was logged, masked.
"""

from __future__ import annotations

import json

import pytest
import requests

from helpers import (
    API_KEY,
    LIVE_SECRET,
    WORKSPACE,
    delivery,
    load_contract,
    log_leaks,
    make_key,
    push,
    sign,
    two_workspace_dataset,
    unknown_key,
)
from services import api_keys

PHONE_FORMS = ["+62 812-3456-7890", "081234567890", "6281234567890", "+6281299999999", "0812 0000 0000"]


def test_the_check_finds_each_kind_of_leak():
    key = unknown_key()
    content = load_contract("webhook_scenario.json")["messages"][0]["content"]
    for text in ("phone=+6281234567890", "phone 081234567890", "sig=" + sign(b"{}", "x"), API_KEY, LIVE_SECRET,
                 key, api_keys.hash_key(key), "prefix=" + key[:api_keys.PREFIX_LENGTH], content):
        assert log_leaks(f"timing route=/api x {text} y"), text
    assert log_leaks("timing route=/api phone=+62812****890 status=200 total_ms=1.25") == []


def test_lookups_log_one_masked_line_each(client, auth, demo, logs_hold_no_secrets):
    for phone in PHONE_FORMS:
        for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"):
            client.get(route, headers=auth, query_string={"phone": phone, "workspace_id": WORKSPACE})
    client.get("/api/contacts/by-phone", headers={"x-api-key": "wrong-" + API_KEY},
               query_string={"phone": PHONE_FORMS[0], "workspace_id": WORKSPACE})
    logged = logs_hold_no_secrets()
    assert logged.count("timing route=") == 2 * len(PHONE_FORMS) + 1
    assert "phone=+62812****890" in logged
    assert log_leaks(logged) == []


def test_signed_webhooks_log_no_secret_signature_or_text(make_app, load, logs_hold_no_secrets):
    scenario = load_contract("webhook_scenario.json")
    load(scenario["dataset"])
    client = make_app(KAPSO_WEBHOOK_SECRET=LIVE_SECRET).test_client()
    for item in scenario["deliveries"]:
        raw = json.dumps(item["body"]).encode()
        headers = {**item["headers"], "Content-Type": "application/json"}
        assert client.post("/api/webhook/kapso", data=raw,
                           headers={**headers, "X-Webhook-Signature": sign(raw, LIVE_SECRET)}).status_code == 200
        assert client.post("/api/webhook/kapso", data=raw,
                           headers={**headers, "X-Webhook-Signature": sign(raw, "not-the-secret")}).status_code == 401
    logged = logs_hold_no_secrets()
    assert logged.count("timing route=/api/webhook/kapso") == 2 * len(scenario["deliveries"])
    assert log_leaks(logged) == []


def test_workspace_keys_log_no_key_hash_or_prefix(make_app, db, load, convex, standin, logs_hold_no_secrets):
    data = two_workspace_dataset()
    load(data)
    convex.import_dataset(data)
    row, key = make_key(db)
    push(standin.url, [row])
    client = make_app(CRM_API_KEY=None, KAPSO_WEBHOOK_SECRET=LIVE_SECRET).test_client()
    for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"):
        for used in (key, unknown_key()):
            client.get(route, headers={"x-api-key": used},
                       query_string={"phone": "081234567890", "workspace_id": WORKSPACE})
    body, headers = delivery()
    assert client.post("/api/webhook/kapso", data=body, headers={**headers, "x-api-key": key}).status_code == 200
    logged = logs_hold_no_secrets()
    assert logged.count("timing route=") == 5
    assert log_leaks(logged) == []


@pytest.mark.parametrize("access_log", ["", "-"])
def test_gunicorn_and_standin_logs_hold_no_secrets(gunicorn, demo, convex, standin, logs_hold_no_secrets,
                                                    access_log):
    convex.import_dataset(load_contract("demo_data.json"))
    server = gunicorn(KAPSO_WEBHOOK_SECRET=LIVE_SECRET, GUNICORN_ACCESS_LOG=access_log)
    scenario_delivery = load_contract("webhook_scenario.json")["deliveries"][0]
    raw = json.dumps(scenario_delivery["body"]).encode()
    headers = {**scenario_delivery["headers"], "Content-Type": "application/json",
               "X-Webhook-Signature": sign(raw, LIVE_SECRET)}
    with requests.Session() as session:
        for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"):
            for phone in PHONE_FORMS:
                session.get(server.url + route, headers={"x-api-key": API_KEY},
                            params={"phone": phone, "workspace_id": WORKSPACE}, timeout=10)
            # A key as the user name of Basic auth, a phone or a BSUID as the request id, a BSUID lookup.
            for request_id in ("6281234567890", "ID.13491208655302741918", "a+6281234567890"):
                session.get(server.url + route, auth=(API_KEY, "x"), timeout=10,
                            headers={"x-api-key": API_KEY, "X-Request-ID": request_id},
                            params={"bsuid": "ID.13491208655302741918", "workspace_id": WORKSPACE})
        session.post(server.url + "/api/webhook/kapso", data=raw, headers=headers, timeout=10)
        requests.post(standin.url + "/webhook/kapso", data=raw, headers=headers, timeout=10)
    server.stop()  # gunicorn has written every line
    logged = logs_hold_no_secrets()
    assert logged.count("timing route=") >= 2 * len(PHONE_FORMS) + 7
    assert "bsuid=ID.134****918" in logged
    assert log_leaks(logged) == []
