"""Shared helpers of the keys-per-workspace tests (issue 14)."""

from __future__ import annotations

import copy
import json
from typing import Any

import psycopg

from services import api_keys
from tests.conftest import API_KEY, OTHER_WORKSPACE, WORKSPACE, load_contract

OTHER_PHONE_ID = "other-phone-number-id"
DEMO_PHONE = "+6281234567890"
UNAUTHORIZED = {"error": "Unauthorized"}
# Every key the tests made, with its prefix: test_zz_logs.py checks none reached a log.
ISSUED: list[str] = []


def two_workspace_dataset() -> dict[str, Any]:
    """The demo data with a Kapso phone number id on the second workspace too."""
    data = copy.deepcopy(load_contract("demo_data.json"))
    data["workspaces"][1]["kapso_phone_id"] = OTHER_PHONE_ID
    return data


def make_key(conn: psycopg.Connection, workspace: str = WORKSPACE, name: str = "bot") -> tuple[api_keys.KeyRow, str]:
    """A new key of `workspace` in PostgreSQL: its row and the key itself."""
    row, key = api_keys.create_key(conn, workspace, name)
    ISSUED.append(key)
    return row, key


def push(standin_url: str, rows: list[api_keys.KeyRow]) -> None:
    api_keys.push_to_convex(standin_url, API_KEY, rows)


def unknown_key() -> str:
    key = api_keys.generate_key()
    ISSUED.append(key)
    return key


def delivery() -> tuple[bytes, dict[str, str]]:
    """One batch: a message for each workspace's phone number id."""
    def event(message_id: str, phone_number_id: str) -> dict[str, Any]:
        return {"message": {"id": message_id, "timestamp": "1767225600", "type": "text", "text": {"body": "halo"},
                            "kapso": {"direction": "inbound"}},
                "conversation": {"phone_number": "+6281111111111", "phone_number_id": phone_number_id}}

    body = {"batch": True, "data": [event("wamid.iso-a", "demo-phone-number-id"),
                                    event("wamid.iso-b", OTHER_PHONE_ID)]}
    headers = {"Content-Type": "application/json", "X-Webhook-Event": "whatsapp.message.received"}
    return json.dumps(body).encode(), headers


def stored_workspaces(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT workspace_id::text FROM messages WHERE kapso_message_id LIKE 'wamid.iso-%' "
                        "ORDER BY kapso_message_id").fetchall()
    return [r[0] for r in rows]


__all__ = ["OTHER_WORKSPACE", "WORKSPACE"]
