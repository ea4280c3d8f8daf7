"""Storing judged Kapso webhook events in PostgreSQL (docs/webhook.md §4-§5).

Everything from one request commits in one transaction before the answer.
Row locks are taken in one canonical order: every contact of the delivery,
sorted by (workspace id, phone), is created or locked before any message is
written, so two deliveries naming the same senders in opposite orders queue
instead of deadlocking. A transaction that still loses a serialization or
deadlock race is retried whole, a bounded number of times.
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
from services.kapso import META_STATUSES, Event, Ignored, ValidMessage, ValidStatus, judge, log_ignored
from services.postgres.pool import Database

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


@dataclass
class _ContactPlan:
    """What a delivery says about one (workspace, phone): its first time and last name."""

    first_at: datetime
    name: str | None = None


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _contact_plans(judged: list[ValidMessage | ValidStatus | Ignored]) -> dict[tuple[str, str], _ContactPlan]:
    """created_at = first message in payload order, kapso_name = last non-blank name (§4)."""
    plans: dict[tuple[str, str], _ContactPlan] = {}
    for item in judged:
        if isinstance(item, ValidMessage):
            plan = plans.setdefault((item.workspace_id, item.phone), _ContactPlan(_at(item.created_at_ms)))
            plan.name = item.contact_name or plan.name
    return plans


def _take_contacts(tx: CountingCursor, plans: dict[tuple[str, str], _ContactPlan]) -> dict[tuple[str, str], str]:
    """Create or lock every contact, in canonical order, with its conversation; key -> conversation id."""
    conversations: dict[tuple[str, str], str] = {}
    for key in sorted(plans):
        plan = plans[key]
        # DO UPDATE (never DO NOTHING) so an existing contact is row-locked here, in order.
        contact_id = tx.run(
            """INSERT INTO contacts (workspace_id, phone, kapso_name, created_at, updated_at)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (workspace_id, phone) DO UPDATE
                   SET kapso_name = COALESCE(EXCLUDED.kapso_name, contacts.kapso_name)
               RETURNING id""",
            (*key, plan.name, plan.first_at, plan.first_at),
        ).fetchone()[0]
        row = tx.run(
            """INSERT INTO conversations (workspace_id, contact_id, status, unread_count, created_at)
               VALUES (%s, %s, 'open', 0, %s) ON CONFLICT (contact_id) DO NOTHING RETURNING id""",
            (key[0], contact_id, plan.first_at),
        ).fetchone()
        if row is None:
            row = tx.run("SELECT id FROM conversations WHERE contact_id = %s", (contact_id,)).fetchone()
        conversations[key] = row[0]
    return conversations


def _store_message(tx: CountingCursor, item: ValidMessage, conversation_id: str, result: IngestResult) -> None:
    at = _at(item.created_at_ms)
    inserted = tx.run(
        """INSERT INTO messages (workspace_id, conversation_id, direction, content, message_type,
                                 kapso_message_id, status, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (workspace_id, kapso_message_id) DO NOTHING RETURNING id""",
        (item.workspace_id, conversation_id, item.direction, item.content, item.message_type,
         item.kapso_message_id, item.status, at),
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
        tx.run("UPDATE messages SET status = %s WHERE id = %s", (item.status, row[0]))
        result.stored += 1


def _apply(tx: CountingCursor, events: list[Event], region: str, now_ms: int,
           allowed_workspace: str | None) -> IngestResult:
    judged = [judge(event, tx.workspace, region, now_ms, allowed_workspace) for event in events]
    conversations = _take_contacts(tx, _contact_plans(judged))
    result = IngestResult()
    for item in judged:  # payload order: a status may follow its message in one batch
        if isinstance(item, Ignored):
            result.ignore(item.reason)
        elif isinstance(item, ValidMessage):
            _store_message(tx, item, conversations[(item.workspace_id, item.phone)], result)
        else:
            _store_status(tx, item, result)
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
    for reason in result.reasons:
        log_ignored(reason)
    return result
