"""contract/webhook_replay.json, read for the replay tests and bench/soak.py.

The corpus says what to send (body or exact raw text, headers, how to
authenticate) and what must come back; this module turns a delivery into
request parts and compares an answer, the stored messages, contacts and
conversations with the expectation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

CORPUS_FILE = Path(__file__).resolve().parent.parent / "contract" / "webhook_replay.json"
# One line per reason and delivery, with its count (docs/webhook.md §3).
IGNORED_LINE = re.compile(r"webhook events ignored reason=([a-z_]+) count=(\d+)")


def load_corpus() -> dict[str, Any]:
    return json.loads(CORPUS_FILE.read_text(encoding="utf-8"))


def expand(value: Any) -> Any:
    """Replace every {"$fill": {prefix, repeat, times, suffix}} by the string it stands for."""
    if isinstance(value, dict):
        if set(value) == {"$fill"}:
            spec = value["$fill"]
            return spec.get("prefix", "") + spec["repeat"] * spec["times"] + spec.get("suffix", "")
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    return value


def signature(raw: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def request_parts(delivery: dict[str, Any], secret: str, api_key: str) -> tuple[str, dict[str, str], bytes, dict]:
    """(method, headers, raw body, query) for one delivery, authenticated as it says."""
    if delivery.get("method", "POST") == "GET":
        return "GET", {}, b"", delivery.get("query", {})
    if "raw_body" in delivery:
        raw = delivery["raw_body"].encode("utf-8")
    else:
        raw = json.dumps(expand(delivery["body"])).encode("utf-8")
    headers = {"Content-Type": "application/json", **delivery.get("headers", {})}
    auth = delivery.get("auth", "signature")
    if auth == "signature":
        headers["X-Webhook-Signature"] = signature(raw, secret)
    elif auth == "legacy_signature":
        headers["X-Kapso-Signature"] = "sha256=" + signature(raw, secret)
    elif auth == "hub_signature":
        headers["X-Hub-Signature-256"] = "sha256=" + signature(raw, secret)
    elif auth == "api_key":
        headers["x-api-key"] = api_key
    elif auth == "bad_signature":
        headers["X-Webhook-Signature"] = "0" * 64
    elif auth != "none":
        raise ValueError(f"unknown auth {auth!r} in {delivery['name']}")
    return "POST", headers, raw, {}


def answer_problems(delivery: dict[str, Any], status: int, content_type: str, body: bytes) -> list[str]:
    """How an answer differs from the delivery's expectation (empty: as expected)."""
    expect = delivery["expect"]
    problems = []
    if status != expect["status"]:
        problems.append(f"status {status} != {expect['status']}")
    if "json" in expect:
        try:
            got = json.loads(body)
        except ValueError:
            got = body[:200]
        if got != expect["json"]:
            problems.append(f"answer {got!r} != {expect['json']!r}")
    else:
        if not content_type.startswith("text/plain"):
            problems.append(f"content type {content_type!r} is not text/plain")
        if body.decode("utf-8", "replace") != expect["text"]:
            problems.append(f"answer {body[:200]!r} != {expect['text']!r}")
    return problems


def reason_problems(delivery: dict[str, Any], lines: list[str]) -> list[str]:
    """The `webhook events ignored reason= count=` lines logged for one delivery against its expected reasons."""
    got: Counter[str] = Counter()
    for line in lines:
        for match in IGNORED_LINE.finditer(line):
            got[match.group(1)] += int(match.group(2))
    want = Counter(delivery.get("reasons", []))
    return [] if got == want else [f"ignored reasons {sorted(got.elements())} != {sorted(want.elements())}"]


def ignored_count(lines: list[str]) -> int:
    """How many ignored events the lines report."""
    return sum(int(m.group(2)) for line in lines for m in IGNORED_LINE.finditer(line))


def report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"- {name}: {'; '.join(items)}" for name, items in problems.items())


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:80]}…({len(text)} chars)"


def message_problems(expected: list[dict[str, Any]], stored: list[dict[str, Any]]) -> list[str]:
    """Differences between the corpus's 'messages' and the stored rows, keyed by (workspace, id)."""
    want = {(m["workspace_id"], m["kapso_message_id"]): m for m in expand(expected)}
    got = {(m["workspace_id"], m["kapso_message_id"]): m for m in stored}
    problems = [f"missing {short(key)}" for key in want if key not in got]
    problems += [f"unexpected {short(key)} {short(got[key].get('content'))}" for key in got if key not in want]
    for key in want.keys() & got.keys():
        for field, value in want[key].items():
            if got[key].get(field) != value:
                problems.append(f"{short(key[1])} {field}: {short(got[key].get(field))} != {short(value)}")
    return problems


def lookup_query(lookup: dict[str, Any]) -> dict[str, str]:
    """The query of one 'lookups' entry: its phone and/or bsuid (both when both are given) and workspace."""
    query = {key: expand(lookup[key]) for key in ("phone", "bsuid") if key in lookup}
    query["workspace_id"] = lookup["workspace_id"]
    return query


def _same(field: str, got: Any, want: Any) -> bool:
    if field == "kapso_message_ids":
        return sorted(got or []) == sorted(want)
    return got == want


def contact_problems(expected: list[dict[str, Any]], stored: list[dict[str, Any]]) -> list[str]:
    """The corpus's 'contacts' against the stored contacts (dicts of the column values, times as ISO text).

    'contacts' lists every contact of each workspace it names, matched by (phone, bsuid): a merged
    contact that was not deleted, or one created by an ignored event, is unexpected.
    """
    want_all = expand(expected)
    problems: list[str] = []
    for ws in sorted({c["workspace_id"] for c in want_all}):
        want = {(c.get("phone"), c.get("bsuid")): c for c in want_all if c["workspace_id"] == ws}
        rows = [c for c in stored if c["workspace_id"] == ws]
        got = {(c.get("phone"), c.get("bsuid")): c for c in rows}
        if len(rows) != len(want):
            problems.append(f"workspace …{ws[-4:]}: {len(rows)} contacts != {len(want)}")
        problems += [f"missing contact {short(key)}" for key in want if key not in got]
        problems += [f"unexpected contact {short(key)} kapso_name={short(got[key].get('kapso_name'))}"
                     for key in got if key not in want]
        for key in want.keys() & got.keys():
            for field, value in want[key].items():
                if not _same(field, got[key].get(field), value):
                    problems.append(f"contact {short(key)} {field}: {short(got[key].get(field))} != {short(value)}")
    return problems


def conversation_problems(expected: list[dict[str, Any]], contacts: list[dict[str, Any]],
                          conversations: list[dict[str, Any]]) -> list[str]:
    """The corpus's 'conversations' against the stored ones.

    Each entry names one contact of its workspace by phone and/or bsuid; the contact must be the only
    match and have exactly one conversation, whose listed fields must be the expected values
    ('kapso_message_ids' compared sorted). Rows are dicts with 'id' / 'contact_id'.
    """
    problems: list[str] = []
    for entry in expand(expected):
        ident = {key: entry[key] for key in ("phone", "bsuid") if key in entry}
        label = f"…{entry['workspace_id'][-4:]} {short(ident)}"
        matches = [c for c in contacts if c["workspace_id"] == entry["workspace_id"]
                   and all(c.get(key) == value for key, value in ident.items())]
        if len(matches) != 1:
            problems.append(f"{label}: {len(matches)} contacts match")
            continue
        found = [v for v in conversations if v["contact_id"] == matches[0]["id"]]
        if len(found) != 1:
            problems.append(f"{label}: {len(found)} conversations")
            continue
        for field, value in entry.items():
            if field in ("workspace_id", "phone", "bsuid"):
                continue
            if not _same(field, found[0].get(field), value):
                problems.append(f"{label} {field}: {short(found[0].get(field))} != {short(value)}")
    return problems


class LineCollector(logging.Handler):
    """Collects the messages of log records (each once, however many loggers it passes)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not any(seen is record for seen in self.records):
            self.records.append(record)

    def take(self) -> list[str]:
        records, self.records = self.records, []
        return [record.getMessage() for record in records]
