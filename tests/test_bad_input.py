"""A careless and a hostile client, one table row each, against the real gunicorn.

Every row must answer its docs/contract.md §3/§7 status with a JSON `{"error": …}` body:
never a 5xx, never HTML, never a traceback, and nothing stored changes.
To add a case, add one row to
`helpers.BAD_INPUT_ROWS` (the access-log test sends the same rows).
"""

from __future__ import annotations

import psycopg
import pytest
import requests

from helpers import BAD_INPUT_ROWS as ROWS


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
