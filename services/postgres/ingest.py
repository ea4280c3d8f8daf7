"""Storing judged Kapso webhook events in PostgreSQL (docs/webhook.md §4-§7).

Everything from one request commits in one transaction before the answer, in
a number of round trips that does not grow with the delivery (docs/contract.md
§11): one read of the workspaces its phone number ids name, then one call of
`kontak_ingest` (migrations/0007), which stores the valid events in payload
order inside PostgreSQL. That function first takes an advisory lock on every
identifier (phone, BSUID) the delivery names, in the sorted order given here,
so two deliveries naming the same people in opposite orders queue instead of
deadlocking, and never both create one person. A transaction that still loses
a serialization or deadlock race is retried whole, a bounded number of times.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from services import metrics, timing
from services.contract import rules
from services.errors import BackendUnavailable
from services.identity import is_valid_identifier
from services.kapso import Event
from services.postgres.pool import Database
from services.webhook_judge import (
    Ignored,
    Judged,
    ValidConversationEvent,
    ValidIdentityChange,
    ValidMessage,
    ValidStatus,
    judge,
    log_ignored,
)

# SQLSTATE 40001 / 40P01: the transaction did nothing wrong, it lost a race; run it again.
# 23505: a contact created at the same moment by another writer (the CRM) holds the identifier.
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.UniqueViolation)
_RETRY_PAUSE_SECONDS = 0.02


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    reasons: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        if outcome == "stored":
            self.stored += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        else:
            self.ignored += 1
            self.reasons.append(outcome)

    def as_answer(self) -> dict[str, object]:
        return {"received": True, "stored": self.stored, "duplicates": self.duplicates, "ignored": self.ignored}


def lock_key(workspace_id: str, kind: str, value: str) -> int:
    """A signed 64-bit advisory lock key for one identifier of one workspace."""
    digest = hashlib.blake2b(f"{workspace_id}|{kind}|{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _identifier_keys(judged: list[Judged]) -> list[int]:
    """Every identifier a delivery may read or write, as sorted advisory lock keys."""
    keys = set()
    for item in judged:
        for valid in (item, item.unseen) if isinstance(item, ValidStatus) else (item,):
            person = getattr(valid, "person", None)
            if person is not None:
                keys |= {lock_key(valid.workspace_id, "phone", person.phone)} if person.phone else set()
                keys |= {lock_key(valid.workspace_id, "bsuid", person.bsuid)} if person.bsuid else set()
            if isinstance(valid, ValidIdentityChange):
                keys.add(lock_key(valid.workspace_id, valid.field, valid.new_value))
    return sorted(keys)


def _message_item(item: ValidMessage) -> dict[str, Any]:
    return {"kind": "message", "workspace_id": item.workspace_id, **asdict(item.person),
            "contact_name": item.contact_name, "kapso_message_id": item.kapso_message_id,
            "at_ms": item.created_at_ms, "message_type": item.message_type, "direction": item.direction,
            "content": item.content, "status": item.status, "error_code": item.error.code,
            "error_title": item.error.title}


def _item(item: Judged) -> dict[str, Any]:
    """One valid event as kontak_ingest reads it."""
    if isinstance(item, ValidMessage):
        return _message_item(item)
    if isinstance(item, ValidStatus):
        unseen = item.unseen
        return {"kind": "status", "workspace_id": item.workspace_id, "kapso_message_id": item.kapso_message_id,
                "status": item.status, "error_code": item.error.code, "error_title": item.error.title,
                "unseen": None if unseen is None else {"reason": unseen.reason} if isinstance(unseen, Ignored)
                else _message_item(unseen)}
    if isinstance(item, ValidIdentityChange):
        return {"kind": "identity", "workspace_id": item.workspace_id, "phone": item.person.phone,
                "bsuid": item.person.bsuid, "field": item.field, "new_value": item.new_value}
    assert isinstance(item, ValidConversationEvent)
    return {"kind": "conversation", "workspace_id": item.workspace_id, "phone": item.person.phone,
            "bsuid": item.person.bsuid, "status": item.status, "at_ms": item.at_ms}


@lru_cache(maxsize=1)
def _status_rules() -> Jsonb:
    """The status rules of contract/webhook_rules.json, as kontak_store_status reads them."""
    limits = rules()
    return Jsonb({"meta_statuses": sorted(limits.meta_statuses), "status_rank": dict(limits.status_rank),
                  "failed_allowed_below_rank": limits.failed_allowed_below_rank})


def _workspaces(cur: psycopg.Cursor, events: list[Event]) -> dict[str, str]:
    """kapso_phone_id -> workspace id for every valid phone number id of the delivery: one read."""
    ids = sorted({e.phone_number_id for e in events if getattr(e, "phone_number_id", None) is not None
                  and is_valid_identifier(e.phone_number_id)})
    if not ids:
        return {}
    rows = cur.execute("SELECT kapso_phone_id, id::text FROM workspaces WHERE kapso_phone_id = ANY(%s)", (ids,))
    return dict(rows.fetchall())


def _store(cur: psycopg.Cursor, valid: list[Judged]) -> list[str]:
    """kontak_ingest's outcome for each valid event, in one round trip."""
    if not valid:
        return []
    return cur.execute("SELECT kontak_ingest(%s, %s, %s)",
                       (Jsonb([_item(item) for item in valid]), _identifier_keys(valid),
                        _status_rules())).fetchone()[0]


def _apply(cur: psycopg.Cursor, events: list[Event], region: str, now_ms: int,
           allowed_workspace: str | None) -> IngestResult:
    workspaces = _workspaces(cur, events)
    judged = [judge(event, workspaces.get, region, now_ms, allowed_workspace) for event in events]
    outcomes = iter(_store(cur, [item for item in judged if not isinstance(item, Ignored)]))
    result = IngestResult()
    for item in judged:  # payload order, for the answer's counts and the log's reasons
        result.count(item.reason if isinstance(item, Ignored) else next(outcomes))
    return result


def ingest_events(db: Database, events: list[Event], region: str,
                  allowed_workspace: str | None = None) -> IngestResult:
    """Judge and store `events` in one transaction, committed before this returns.

    `region` is the configured DEFAULT_REGION; `allowed_workspace`, when set,
    is the only workspace the delivery's key may write.
    """
    now_ms = round(time.time() * 1000)  # one clock reading judges the whole delivery
    attempts = rules().transaction_attempts

    def store(conn: psycopg.Connection) -> IngestResult:
        for attempt in range(1, attempts + 1):
            try:
                # BEGIN, the workspaces, kontak_ingest, COMMIT: four round trips whatever the size.
                timing.count_round_trips(4 * attempt)
                with conn.transaction(), conn.cursor() as cur:
                    return _apply(cur, events, region, now_ms, allowed_workspace)
            except _RETRYABLE:
                if attempt == attempts:  # the last attempt returns or raises
                    raise BackendUnavailable() from None
                # Jittered, so the two losers of one race do not collide again in step.
                time.sleep(random.uniform(0.5, 1.5) * _RETRY_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    result = db.write(store)
    log_ignored(result.reasons)
    metrics.webhook_events(result.stored, result.duplicates, result.reasons)  # docs/contract.md §15
    return result
