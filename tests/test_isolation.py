"""Tenant isolation: a key holder asking for workspace A never receives workspace B's data."""

from __future__ import annotations

import json

import requests

from commands.compare.probes import phone_forms
from helpers import API_KEY, LIVE_SECRET, OTHER_WORKSPACE, WORKSPACE, load_contract, sign

DEMO = load_contract("demo_data.json")


def other_tenant_values(workspace: str) -> set[str]:
    """Names and notes that belong to contacts outside `workspace`."""
    values = set()
    for contact in DEMO["contacts"]:
        if contact["workspace_id"] != workspace:
            values |= {contact["name"], contact["kapso_name"], *(n["content"] for n in contact["notes"])} - {None}
    return values


def test_lookups_never_cross_workspaces(live):
    session = requests.Session()
    session.headers["x-api-key"] = API_KEY
    phones = [text for contact in DEMO["contacts"] for _, text in phone_forms(contact["phone"])]
    for workspace in (WORKSPACE, OTHER_WORKSPACE):
        foreign = other_tenant_values(workspace)
        for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"):
            for phone in phones:
                body = session.get(live.url + route, params={"phone": phone, "workspace_id": workspace},
                                   timeout=10).text
                assert not any(value in body for value in foreign), (route, workspace, phone)


def test_webhook_into_one_workspace_leaves_the_other_untouched(live):
    """Budi exists in both demo workspaces; a message to workspace A must not reach B's Budi."""
    body = json.dumps({
        "message": {"id": "wamid.isolation-1", "timestamp": "1768950000", "type": "text",
                    "text": {"body": "Halo, mau tanya visa"}, "kapso": {"direction": "inbound", "status": "received"}},
        "conversation": {"phone_number": "+6281234567890", "phone_number_id": "demo-phone-number-id",
                         "kapso": {"contact_name": "Budi"}},
        "phone_number_id": "demo-phone-number-id"}).encode()
    headers = {"X-Webhook-Event": "whatsapp.message.received", "Content-Type": "application/json",
               "X-Webhook-Signature": sign(body, LIVE_SECRET)}
    assert requests.post(live.url + "/api/webhook/kapso", data=body, headers=headers, timeout=10).json()["stored"] == 1
    convex = requests.post(live.standin.url + "/webhook/kapso", data=body, timeout=10,
                           headers={**headers, "X-Webhook-Signature": "", "x-api-key": API_KEY})
    assert convex.json()["stored"] == 1
    for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"):
        theirs = requests.get(live.url + route, headers={"x-api-key": API_KEY}, timeout=10,
                              params={"phone": "+6281234567890", "workspace_id": OTHER_WORKSPACE}).json()
        assert theirs["contact"]["name"] == "Budi (other workspace)"
        assert theirs["contact"]["is_returning"] is False and theirs["last_interaction"] is None
        mine = requests.get(live.url + route, headers={"x-api-key": API_KEY}, timeout=10,
                            params={"phone": "+6281234567890", "workspace_id": WORKSPACE}).json()
        assert mine["last_interaction"] == "2026-01-20T23:00:00.000Z"  # 1768950000
