"""contract/webhook_replay.json against both webhooks (docs/webhook.md, issues 11 and 18).

Every delivery is replayed, in order, into the Flask webhook (real embedded
PostgreSQL) and into the Convex stand-in's /webhook/kapso (the project's own
Convex functions). Each answer must be the corpus's expectation, the ignored
events' reasons (from the one log line each) its reasons, the stored
messages, contacts and conversations (PostgreSQL) its 'messages', 'contacts'
and 'conversations', and every lookup (by phone, by bsuid, by both) on both
routes its expected JSON. convex/tests/replay.test.ts checks the same on
convex-test. The expectations are derived by hand from docs/webhook.md, not
recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from app import create_app
from helpers import API_KEY, LIVE_SECRET
from helpers_replay import (
    LineCollector,
    answer_problems,
    contact_problems,
    conversation_problems,
    ignored_count,
    load_corpus,
    lookup_query,
    message_problems,
    reason_problems,
    report,
    request_parts,
)

URL = "/api/webhook/kapso"
CORPUS = load_corpus()
KEY = {"x-api-key": API_KEY}


def _iso(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def _rows(url: str, sql: str, keys: list[str]) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(sql).fetchall()
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _stored_messages(url: str) -> list[dict[str, Any]]:
    return _rows(url, f"""SELECT workspace_id::text, kapso_message_id, direction, content, message_type, status,
                                {_iso("created_at")}, error_code, error_title
                         FROM messages""",
                 ["workspace_id", "kapso_message_id", "direction", "content", "message_type", "status", "created_at",
                  "error_code", "error_title"])


def _stored_contacts(url: str) -> list[dict[str, Any]]:
    return _rows(url, f"""SELECT id::text, workspace_id::text, phone, bsuid, parent_bsuid, username, name, kapso_name,
                                email, lead_status, lead_score, tags, {_iso("created_at")}, {_iso("updated_at")}
                         FROM contacts""",
                 ["id", "workspace_id", "phone", "bsuid", "parent_bsuid", "username", "name", "kapso_name", "email",
                  "lead_status", "lead_score", "tags", "created_at", "updated_at"])


def _stored_conversations(url: str) -> list[dict[str, Any]]:
    return _rows(url, f"""SELECT c.id::text, c.workspace_id::text, c.contact_id::text, c.status, {_iso("c.status_at")},
                                c.unread_count, {_iso("c.last_message_at")}, c.last_message_preview,
                                {_iso("c.created_at")},
                                ARRAY(SELECT m.kapso_message_id FROM messages m WHERE m.conversation_id = c.id)
                         FROM conversations c""",
                 ["id", "workspace_id", "contact_id", "status", "status_at", "unread_count", "last_message_at",
                  "last_message_preview", "created_at", "kapso_message_ids"])


def _standin_lines(standin, offset: int) -> tuple[list[str], int]:
    with open(standin.log_file, "rb") as f:
        f.seek(offset)
        data = f.read()
    return data.decode("utf-8", "replace").splitlines(), offset + len(data)


@pytest.fixture(scope="module")
def replayed(backends_of_their_own, tmp_path_factory):
    """The corpus replayed into both webhooks, each backend of its own holding the corpus's data set;
    the answers' problems per delivery, per backend."""
    with backends_of_their_own(tmp_path_factory.mktemp("replay"), CORPUS["dataset"]) as (url, standin):
        yield from _replay(url, standin)


def _replay(url: str, standin) -> Iterator[dict[str, Any]]:
    app = create_app({"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url,
                      "KAPSO_WEBHOOK_SECRET": LIVE_SECRET, "DEFAULT_REGION": "ID"})
    client = app.test_client()
    collector = LineCollector()
    loggers = [logging.getLogger(), logging.getLogger("kontak")]
    for logger in loggers:
        logger.addHandler(collector)
    flask_problems: dict[str, list[str]] = {}
    convex_problems: dict[str, list[str]] = {}
    offset = standin.log_file.stat().st_size if standin.log_file.exists() else 0
    try:
        for delivery in CORPUS["deliveries"]:
            method, headers, raw, query = request_parts(delivery, LIVE_SECRET, API_KEY)
            collector.take()
            if method == "GET":
                response = client.get(URL, query_string=query)
            else:
                response = client.post(URL, data=raw, headers=headers)
            problems = answer_problems(delivery, response.status_code, response.content_type or "", response.data)
            problems += reason_problems(delivery, collector.take())
            if problems:
                flask_problems[delivery["name"]] = problems

            if method == "GET":
                answer = requests.get(standin.url + "/webhook/kapso", params=query, timeout=30)
            else:
                answer = requests.post(standin.url + "/webhook/kapso", data=raw, headers=headers, timeout=30)
            problems = answer_problems(delivery, answer.status_code, answer.headers.get("content-type", ""),
                                       answer.content)
            # The stand-in's log gets the functions' console lines; give a line a moment to land.
            lines, offset = _standin_lines(standin, offset)
            deadline = time.monotonic() + 1
            while len(delivery.get("reasons", [])) > ignored_count(lines) \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
                more, offset = _standin_lines(standin, offset)
                lines += more
            problems += reason_problems(delivery, lines)
            if problems:
                convex_problems[delivery["name"]] = problems
        yield {"client": client, "flask": flask_problems, "convex": convex_problems, "database_url": url}
    finally:
        for logger in loggers:
            logger.removeHandler(collector)
        app.extensions["kontak.db"].close()


def test_flask_webhook_answers_every_delivery_as_expected(replayed):
    assert not replayed["flask"], "Flask webhook:\n" + report(replayed["flask"])


def test_convex_webhook_answers_every_delivery_as_expected(replayed):
    assert not replayed["convex"], "Convex webhook (stand-in):\n" + report(replayed["convex"])


def test_postgres_holds_exactly_the_expected_messages(replayed):
    problems = message_problems(CORPUS["messages"], _stored_messages(replayed["database_url"]))
    assert not problems, "PostgreSQL messages:\n" + "\n".join(problems)


def test_postgres_holds_exactly_the_expected_contacts(replayed):
    problems = contact_problems(CORPUS.get("contacts", []), _stored_contacts(replayed["database_url"]))
    assert not problems, "PostgreSQL contacts:\n" + "\n".join(problems)


def test_postgres_holds_the_expected_conversations(replayed):
    url = replayed["database_url"]
    problems = conversation_problems(CORPUS.get("conversations", []), _stored_contacts(url), _stored_conversations(url))
    assert not problems, "PostgreSQL conversations:\n" + "\n".join(problems)


def test_both_lookup_routes_answer_the_expected_json_for_every_sender(replayed):
    client = replayed["client"]
    problems: dict[str, list[str]] = {}
    for lookup in CORPUS["lookups"]:
        params = lookup_query(lookup)
        want = (200, lookup["expect"])
        for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"):
            response = client.get(route, query_string=params, headers=KEY)
            got = (response.status_code, response.get_json(silent=True))
            if got != want:
                problems.setdefault(lookup["name"], []).append(f"{route}: {got!r} != {want!r}")
    assert not problems, "lookups:\n" + report(problems)


def test_the_corpus_covers_what_issue_11_lists():
    """A guard against the corpus quietly losing its hostile cases."""
    names = " ".join(d["name"] for d in CORPUS["deliveries"])
    reasons = {reason for d in CORPUS["deliveries"] for reason in d.get("reasons", [])}
    assert reasons >= {"no_message", "unknown_event", "unknown_workspace", "invalid_phone_number_id",
                       "invalid_message_id", "invalid_timestamp", "invalid_type", "invalid_phone",
                       "invalid_status", "unknown_message"}
    for needle in ("NUL", "surrogate", "4 KB", "257", "256", "400-digit", "99999999999", "2000-01-01",
                   "081234567890", "replay", "invalid JSON", "JSON array", "Meta raw", "v1-style", "batch",
                   "whatsapp.phone_number.created", "workflow.execution.handoff", "contact.updated",
                   "whatsapp.conversation.created", "whatsapp.conversation.ended",
                   "whatsapp.conversation.inactive", "message.kapso.phone_number_id", "conversation.contact_name",
                   "late delivered", "GET hub.challenge", "over 1 MiB"):
        assert needle in names, needle


def test_the_corpus_covers_what_issue_18_lists():
    """The same guard for the BSUID identity cases (docs/webhook.md §7)."""
    deliveries = CORPUS["deliveries"]
    names = " ".join(d["name"] for d in deliveries)
    reasons = {reason for d in deliveries for reason in d.get("reasons", [])}
    assert reasons >= {"invalid_bsuid", "unknown_contact", "invalid_timestamp"}
    assert {d.get("auth", "signature") for d in deliveries} >= {"signature", "legacy_signature", "hub_signature"}
    for needle in ("BSUID-only Kapso v2", "Meta raw BSUID-only", "username", "phone-then-BSUID", "BSUID-then-phone",
                   "merges", "replay of the merge", "merges inside one delivery", "had no conversation",
                   "user_changed_number", "user_changed_user_id",
                   "another contact has: merged", "invalid BSUID", "unknown contact", "smb_message_echoes",
                   "whatsapp.message.failed for an id never stored", "failed status with errors for a known",
                   "failed status with errors for an unknown", "an echo and a failed status for it in one delivery",
                   "template name", "order text", "nfm_reply", "list_reply",
                   "button", "image caption", "document filename", "system body", "v1 delivery",
                   "message.message_type", "whatsapp.conversation.created", "whatsapp.conversation.ended",
                   "whatsapp.conversation.inactive", "late whatsapp.conversation.created after ended",
                   "X-Webhook-Signature", "X-Kapso-Signature", "X-Hub-Signature-256"):
        assert needle in names, needle
    lookups = CORPUS["lookups"]
    assert any("bsuid" in lk and "phone" not in lk for lk in lookups)
    assert any("phone" in lk and "bsuid" not in lk for lk in lookups)
    assert any("phone" in lk and "bsuid" in lk for lk in lookups)
    assert any(m.get("error_code") and m.get("error_title") for m in CORPUS["messages"])
    assert {"status", "status_at", "kapso_message_ids"} <= {key for v in CORPUS["conversations"] for key in v}
    assert {"phone", "bsuid", "username", "kapso_name"} <= {key for c in CORPUS["contacts"] for key in c}
