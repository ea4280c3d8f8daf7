"""A careless and a hostile client, one table row each, against the real gunicorn.

Every row must answer its SPEC §3/§7 status with a JSON `{"error": …}` body:
never a 5xx, never HTML, never a traceback, and nothing stored changes.
To add a case, add one row.
"""

from __future__ import annotations

from typing import NamedTuple

import psycopg
import pytest
import requests

from tests.conftest import API_KEY, WORKSPACE

W = WORKSPACE
LOOKUP = "/api/contacts/by-phone"
CONVEX = "/api/contacts/by-phone-convex"
HOOK = "/api/webhook/kapso"
KEY = {"x-api-key": API_KEY}
JSON = {**KEY, "Content-Type": "application/json"}


class Row(NamedTuple):
    name: str
    method: str
    target: str  # path and query, already percent-encoded as a client would send it
    status: int
    error: str
    headers: dict | None = KEY
    body: bytes | None = None


ROWS = [
    Row("missing phone", "GET", f"{LOOKUP}?workspace_id={W}", 400, "Missing phone parameter"),
    Row("empty phone", "GET", f"{LOOKUP}?phone=&workspace_id={W}", 400, "Missing phone parameter"),
    Row("missing workspace", "GET", f"{LOOKUP}?phone=081234567890", 400, "Missing workspace_id parameter"),
    Row("empty workspace", "GET", f"{CONVEX}?phone=081234567890&workspace_id=", 400, "Missing workspace_id parameter"),
    Row("no parameters at all", "GET", CONVEX, 400, "Missing phone parameter"),
    Row("repeated phone: the first counts", "GET", f"{LOOKUP}?phone=x&phone=081234567890&workspace_id={W}", 400,
        "Invalid phone number"),
    Row("7 KB phone", "GET", f"{LOOKUP}?phone={'1' * 7_000}&workspace_id={W}", 400, "Invalid phone number"),
    Row("7 KB workspace", "GET", f"{CONVEX}?phone=081234567890&workspace_id={'a' * 7_000}", 400,
        "Invalid workspace_id"),
    # Request lines over 8,190 bytes are refused by gunicorn.conf.py's limit (SPEC section 11).
    Row("10 KB phone", "GET", f"{LOOKUP}?phone={'1' * 10_000}&workspace_id={W}", 414, "URI too long"),
    Row("1 MB phone", "GET", f"{LOOKUP}?phone={'1' * 1_048_576}&workspace_id={W}", 414, "URI too long"),
    Row("percent-encoded NUL", "GET", f"{LOOKUP}?phone=0812%00345678&workspace_id={W}", 400, "Invalid phone number"),
    Row("NUL in workspace", "GET", f"{CONVEX}?phone=081234567890&workspace_id={W}%00", 400, "Invalid workspace_id"),
    Row("invalid UTF-8", "GET", f"{LOOKUP}?phone=%FF%FE0812&workspace_id={W}", 400, "Invalid phone number"),
    Row("SQL injection phone", "GET", f"{LOOKUP}?phone=%27%20OR%201%3D1%20--&workspace_id={W}", 400,
        "Invalid phone number"),
    Row("SQL injection workspace", "GET", f"{LOOKUP}?phone=081234567890&workspace_id=%27%20OR%20%271%27%3D%271",
        400, "Invalid workspace_id"),
    Row("JSON injection phone", "GET", f"{CONVEX}?phone=%7B%22%24ne%22%3A1%7D&workspace_id={W}", 400,
        "Invalid phone number"),
    Row("letters in phone", "GET", f"{LOOKUP}?phone=0812abc34567&workspace_id={W}", 400, "Invalid phone number"),
    Row("emoji phone", "GET", f"{CONVEX}?phone=%F0%9F%93%9E0812345678&workspace_id={W}", 400,
        "Invalid phone number"),
    Row("30 digits", "GET", f"{LOOKUP}?phone={'8' * 30}&workspace_id={W}", 400, "Invalid phone number"),
    Row("only +", "GET", f"{LOOKUP}?phone=%2B&workspace_id={W}", 400, "Invalid phone number"),
    Row("UUID without dashes", "GET", f"{LOOKUP}?phone=081234567890&workspace_id={W.replace('-', '')}", 400,
        "Invalid workspace_id"),
    Row("UUID in braces", "GET", f"{CONVEX}?phone=081234567890&workspace_id=%7B{W}%7D", 400, "Invalid workspace_id"),
    Row("number as workspace", "GET", f"{LOOKUP}?phone=081234567890&workspace_id=1", 400, "Invalid workspace_id"),
    Row("POST to a lookup", "POST", f"{LOOKUP}?phone=081234567890&workspace_id={W}", 405, "Method not allowed"),
    Row("DELETE to a lookup", "DELETE", CONVEX, 405, "Method not allowed"),
    Row("PUT to the webhook", "PUT", HOOK, 405, "Method not allowed"),
    Row("unknown path", "GET", "/api/contacts", 404, "Not found"),
    Row("unknown nested path", "GET", f"{LOOKUP}/extra", 404, "Not found"),
    Row("path traversal", "GET", "/api/../../etc/passwd", 404, "Not found"),
    Row("webhook without auth", "POST", HOOK, 401, "Unauthorized", {"Content-Type": "application/json"}, b"{}"),
    Row("webhook with no body", "POST", HOOK, 400, "Invalid JSON", KEY, None),
    Row("webhook form body", "POST", HOOK, 400, "Invalid JSON",
        {**KEY, "Content-Type": "application/x-www-form-urlencoded"}, b"a=b&c=d"),
    Row("webhook plain text", "POST", HOOK, 400, "Invalid JSON", {**KEY, "Content-Type": "text/plain"}, b"hello"),
    Row("webhook XML", "POST", HOOK, 400, "Invalid JSON", {**KEY, "Content-Type": "application/xml"}, b"<a/>"),
    Row("webhook deeply nested", "POST", HOOK, 400, "Invalid JSON", JSON, b"[" * 200_000 + b"]" * 200_000),
    Row("webhook huge", "POST", HOOK, 413, "Payload too large", JSON, b'{"x": "' + b"a" * 1_100_000 + b'"}'),
    Row("webhook JSON null", "POST", HOOK, 400, "Body must be a JSON object", JSON, b"null"),
    Row("webhook JSON array", "POST", HOOK, 400, "Body must be a JSON object", JSON, b"[1, 2]"),
    Row("webhook invalid UTF-8", "POST", HOOK, 400, "Invalid JSON", JSON, b'{"message": "\xff\xfe"}'),
    Row("header over 8 KB", "GET", f"{LOOKUP}?phone=081234567890&workspace_id={W}", 431, "Request headers too large",
        {**KEY, "X-Padding": "p" * 9000}),
]


def fingerprint(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM messages),
                      (SELECT count(*) FROM contact_notes), (SELECT max(updated_at) FROM contacts),
                      (SELECT sum(unread_count) FROM conversations)""").fetchone()


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input(live, postgres, row):
    before = fingerprint(postgres.url)
    response = requests.request(row.method, live.url + row.target, headers=row.headers, data=row.body, timeout=30)
    assert (response.status_code, response.headers.get("Content-Type")) == (row.status, "application/json")
    assert response.json() == {"error": row.error}
    assert b"<html" not in response.content.lower() and b"Traceback" not in response.content
    assert fingerprint(postgres.url) == before
