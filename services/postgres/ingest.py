"""Storing judged Kapso webhook events in PostgreSQL (docs/webhook.md §4-§5, §7).

Everything from one request commits in one transaction before the answer.
Before anything is read, the transaction takes an advisory lock on every
identifier (phone, BSUID) the delivery names, in one sorted order
(services/postgres/contacts.py), so two deliveries naming the same people in
opposite orders queue instead of deadlocking, and never both create one
person. A transaction that still loses a serialization or deadlock race is
retried whole, a bounded number of times.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import errors as pg_errors

from services import timing
from services.contract import rules
from services.errors import BackendUnavailable
from services.kapso import Event
from services.postgres.contacts import ContactStore, lock_identifiers, lock_key
from services.postgres.pool import Database
from services.webhook_judge import (
    META_STATUSES,
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
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_RETRY_PAUSE_SECONDS = 0.02


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    reasons: list[str] = field(default_factory=list)

    def ignore(self, reason: str) -> None:
        self.ignored += 1
        self.reasons.append(reason)

    def as_answer(self) -> dict[str, object]:
        return {"received": True, "stored": self.stored, "duplicates": self.duplicates, "ignored": self.ignored}


class CountingCursor:
    """One attempt's cursor, counting statements for the timing line."""

    def __init__(self, cur: psycopg.Cursor) -> None:
        self.cur, self.statements = cur, 0
        self.workspaces: dict[str, str | None] = {}

    def run(self, sql: str, params: tuple | dict) -> psycopg.Cursor:
        self.statements += 1
        return self.cur.execute(sql, params)

    def workspace(self, phone_number_id: str) -> str | None:
        """kapso_phone_id -> workspace id, read once per request."""
        if phone_number_id not in self.workspaces:
            row = self.run("SELECT id::text FROM workspaces WHERE kapso_phone_id = %s", (phone_number_id,)).fetchone()
            self.workspaces[phone_number_id] = row[0] if row else None
        return self.workspaces[phone_number_id]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _identifier_keys(judged: list[Judged]) -> list[int]:
    """Every identifier a delivery may read or write, as advisory lock keys."""
    keys = []
    for item in judged:
        if isinstance(item, ValidStatus):
            item = item.unseen
        person = getattr(item, "person", None)
        if person is None:
            continue
        keys += [lock_key(item.workspace_id, "phone", person.phone)] if person.phone else []
        keys += [lock_key(item.workspace_id, "bsuid", person.bsuid)] if person.bsuid else []
        if isinstance(item, ValidIdentityChange):
            keys.append(lock_key(item.workspace_id, item.field, item.new_value))
    return keys


def _resolve_unseen_failures(tx: CountingCursor, judged: list[Judged]) -> list[Judged]:
    """A `failed` status for an id no stored message and no earlier message event has becomes
    that failed message (§7.7); one read of the ids for the whole delivery."""
    candidates = [(i.workspace_id, i.kapso_message_id) for i in judged
                  if isinstance(i, ValidStatus) and i.status == "failed" and i.unseen is not None]
    if not candidates:
        return judged
    stored = set(tx.run(
        """SELECT workspace_id::text, kapso_message_id FROM messages
           WHERE (workspace_id, kapso_message_id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))""",
        ([c[0] for c in candidates], [c[1] for c in candidates])).fetchall())
    resolved: list[Judged] = []
    for item in judged:
        if isinstance(item, ValidStatus) and item.status == "failed" and item.unseen is not None \
                and (item.workspace_id, item.kapso_message_id) not in stored:
            item = item.unseen
        if isinstance(item, ValidMessage):
            stored.add((item.workspace_id, item.kapso_message_id))
        resolved.append(item)
    return resolved


def _store_message(tx: CountingCursor, contacts: ContactStore, item: ValidMessage, result: IngestResult) -> None:
    at = _at(item.created_at_ms)
    contact_id = contacts.for_message(item.workspace_id, item.person, at, item.contact_name)
    conversation_id = contacts.conversation_of(item.workspace_id, contact_id, at)
    inserted = tx.run(
        """INSERT INTO messages (workspace_id, conversation_id, direction, content, message_type,
                                 kapso_message_id, status, error_code, error_title, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (workspace_id, kapso_message_id) DO NOTHING RETURNING id""",
        (item.workspace_id, conversation_id, item.direction, item.content, item.message_type,
         item.kapso_message_id, item.status, item.error.code, item.error.title, at),
    ).fetchone()
    if inserted is None:
        result.duplicates += 1
        return
    tx.run(
        """UPDATE conversations SET
               last_message_preview = CASE WHEN last_message_at IS NULL OR %(at)s >= last_message_at
                                           THEN %(preview)s ELSE last_message_preview END,
               last_message_at = GREATEST(last_message_at, %(at)s),
               unread_count = unread_count + %(unread)s
           WHERE id = %(id)s""",
        {"at": at, "preview": item.content, "unread": int(item.direction == "inbound"), "id": conversation_id},
    )
    result.stored += 1


def status_moves(current: str | None, new: str) -> bool:
    """§4: forward only; `failed` only below `failed_allowed_below_rank`; nothing leaves `failed`.

    A stored status outside the rank table (`received`, none) ranks below `pending`.
    """
    limits = rules()
    if current == "failed":
        return False
    rank = limits.status_rank.get(current, -1) if current is not None else -1
    if new == "failed":
        return rank < limits.failed_allowed_below_rank
    return limits.status_rank.get(new, -1) > rank


def _store_status(tx: CountingCursor, item: ValidStatus, result: IngestResult) -> None:
    row = tx.run(
        "SELECT id, status FROM messages WHERE workspace_id = %s AND kapso_message_id = %s FOR UPDATE",
        (item.workspace_id, item.kapso_message_id),
    ).fetchone()
    if row is None:
        result.ignore("unknown_message")
    elif item.status not in META_STATUSES:
        result.ignore("invalid_status")
    elif not status_moves(row[1], item.status):
        result.duplicates += 1
    else:
        tx.run("""UPDATE messages SET status = %s, error_code = COALESCE(%s, error_code),
                      error_title = COALESCE(%s, error_title) WHERE id = %s""",
               (item.status, item.error.code, item.error.title, row[0]))
        result.stored += 1


def _store_identity_change(contacts: ContactStore, item: ValidIdentityChange, result: IngestResult) -> None:
    contact = contacts.existing(item.workspace_id, item.person)
    if contact is None:
        result.ignore("unknown_contact")
    elif contacts.change_identifier(item.workspace_id, contact, item.field, item.new_value):
        result.stored += 1
    else:
        result.duplicates += 1


def _store_conversation_event(tx: CountingCursor, contacts: ContactStore, item: ValidConversationEvent,
                              result: IngestResult) -> None:
    """Forward only by event time (§7.7)."""
    contact = contacts.existing(item.workspace_id, item.person)
    row = None if contact is None else tx.run(
        "SELECT id, status_at FROM conversations WHERE contact_id = %s FOR UPDATE", (contact["id"],)).fetchone()
    at = _at(item.at_ms)
    if row is None:
        result.ignore("unknown_contact")
    elif row[1] is not None and at <= row[1]:
        result.duplicates += 1
    else:
        tx.run("UPDATE conversations SET status = %s, status_at = %s WHERE id = %s", (item.status, at, row[0]))
        result.stored += 1


def _apply(tx: CountingCursor, events: list[Event], region: str, now_ms: int,
           allowed_workspace: str | None) -> IngestResult:
    judged = [judge(event, tx.workspace, region, now_ms, allowed_workspace) for event in events]
    lock_identifiers(tx, _identifier_keys(judged))
    contacts = ContactStore(tx)
    result = IngestResult()
    for item in _resolve_unseen_failures(tx, judged):  # payload order: each sees what the ones before did
        if isinstance(item, Ignored):
            result.ignore(item.reason)
        elif isinstance(item, ValidMessage):
            _store_message(tx, contacts, item, result)
        elif isinstance(item, ValidStatus):
            _store_status(tx, item, result)
        elif isinstance(item, ValidIdentityChange):
            _store_identity_change(contacts, item, result)
        else:
            _store_conversation_event(tx, contacts, item, result)
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
        statements = 0
        with timing.backend_call(queries=0):
            try:
                for attempt in range(1, attempts + 1):
                    tx = None
                    try:
                        with conn.transaction(), conn.cursor() as cur:
                            tx = CountingCursor(cur)
                            return _apply(tx, events, region, now_ms, allowed_workspace)
                    except _RETRYABLE:
                        if attempt == attempts:  # the last attempt returns or raises
                            raise BackendUnavailable() from None
                        # Jittered, so the two losers of one race do not collide again in step.
                        time.sleep(random.uniform(0.5, 1.5) * _RETRY_PAUSE_SECONDS * attempt)
                    finally:
                        # BEGIN and COMMIT/ROLLBACK are round trips too.
                        statements += (tx.statements if tx is not None else 0) + 2
            finally:
                timing.add_queries(statements)

    result = db.write(store)
    log_ignored(result.reasons)
    return result
