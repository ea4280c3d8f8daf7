"""Storing Kapso webhook events in PostgreSQL (SPEC section 7).

Everything from one request commits in one transaction before the answer.
A message is stored once per (workspace, kapso_message_id); the
conversation's last_message_at follows message times, never the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from services import timing
from services.kapso import Event, Ignored, MessageEvent, StatusEvent
from services.phones import InvalidPhone, normalize_phone
from services.postgres import Database


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0

    def as_answer(self) -> dict[str, object]:
        return {"received": True, "stored": self.stored, "duplicates": self.duplicates, "ignored": self.ignored}


class _Transaction:
    """The request's cursor, counting statements for the timing line."""

    def __init__(self, cur: psycopg.Cursor) -> None:
        self.cur, self.statements, self.workspaces = cur, 0, {}

    def run(self, sql: str, params: tuple | dict) -> psycopg.Cursor:
        self.statements += 1
        return self.cur.execute(sql, params)

    def workspace(self, phone_number_id: str | None) -> str | None:
        """kapso_phone_id -> workspace id, read once per request."""
        if phone_number_id is None:
            return None
        if phone_number_id not in self.workspaces:
            row = self.run("SELECT id FROM workspaces WHERE kapso_phone_id = %s", (phone_number_id,)).fetchone()
            self.workspaces[phone_number_id] = row[0] if row else None
        return self.workspaces[phone_number_id]


def _contact_and_conversation(tx: _Transaction, workspace_id: str, phone: str, event: MessageEvent,
                              at: datetime) -> str:
    """Get or create the contact and its one conversation; return the conversation id."""
    row = tx.run(
        """INSERT INTO contacts (workspace_id, phone, kapso_name, created_at, updated_at)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (workspace_id, phone) DO UPDATE
               SET kapso_name = COALESCE(EXCLUDED.kapso_name, contacts.kapso_name)
           RETURNING id""",
        (workspace_id, phone, event.contact_name, at, at),
    ).fetchone()
    contact_id = row[0]
    tx.run(
        """INSERT INTO conversations (workspace_id, contact_id, status, unread_count, created_at)
           VALUES (%s, %s, 'open', 0, %s) ON CONFLICT (contact_id) DO NOTHING""",
        (workspace_id, contact_id, at),
    )
    return tx.run("SELECT id FROM conversations WHERE contact_id = %s", (contact_id,)).fetchone()[0]


def _store_message(tx: _Transaction, workspace_id: str, event: MessageEvent, result: IngestResult) -> None:
    try:
        phone = normalize_phone(event.phone or "")
    except InvalidPhone:
        result.ignored += 1
        return
    at = datetime.fromtimestamp(event.created_at_ms / 1000, UTC)
    conversation_id = _contact_and_conversation(tx, workspace_id, phone, event, at)
    inserted = tx.run(
        """INSERT INTO messages (workspace_id, conversation_id, direction, content, message_type,
                                 kapso_message_id, status, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (workspace_id, kapso_message_id) DO NOTHING RETURNING id""",
        (workspace_id, conversation_id, event.direction, event.content, event.message_type,
         event.kapso_message_id, event.status, at),
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
        {"at": at, "preview": event.content, "unread": int(event.direction == "inbound"), "id": conversation_id},
    )
    result.stored += 1


def _store_status(tx: _Transaction, workspace_id: str, event: StatusEvent, result: IngestResult) -> None:
    row = tx.run(
        """UPDATE messages m SET status = %s
           FROM (SELECT id, status FROM messages WHERE workspace_id = %s AND kapso_message_id = %s
                 FOR UPDATE) AS before
           WHERE m.id = before.id RETURNING before.status""",
        (event.status, workspace_id, event.kapso_message_id),
    ).fetchone()
    if row is None:
        result.ignored += 1
    elif row[0] == event.status:
        result.duplicates += 1
    else:
        result.stored += 1


def ingest_events(db: Database, events: list[Event]) -> IngestResult:
    """Store `events` in one transaction, committed before this returns."""
    result = IngestResult()
    with db.connection() as conn, timing.backend_call(queries=0):
        with conn.transaction(), conn.cursor() as cur:
            tx = _Transaction(cur)
            for event in events:
                workspace_id = None if isinstance(event, Ignored) else tx.workspace(event.phone_number_id)
                if workspace_id is None:
                    result.ignored += 1
                elif isinstance(event, MessageEvent):
                    _store_message(tx, workspace_id, event, result)
                else:
                    _store_status(tx, workspace_id, event, result)
        # BEGIN and COMMIT are round trips too.
        timing.add_queries(tx.statements + 2)
    return result
