"""Bulk loading of a data set into PostgreSQL with COPY (the seed command, the benchmarks).

Contacts arrive as a stream in the data-set format; each chunk is written
with four COPY statements in one transaction, so a million contacts load in
minutes and an interrupted run leaves only whole contacts behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

import psycopg

from services.postgres.dataset import check_identity, load_dataset

TABLES = ("messages", "contact_notes", "conversations", "contacts", "workspaces")


def empty_all(conn: psycopg.Connection) -> None:
    conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")


def replace_workspaces(conn: psycopg.Connection, workspaces: list[dict[str, Any]]) -> None:
    """Drop these workspaces' rows, then (re)create them: a re-seed starts clean."""
    with conn.transaction():
        conn.execute("DELETE FROM workspaces WHERE id = ANY(%s::uuid[])", ([w["id"] for w in workspaces],))
        load_dataset(conn, {"workspaces": workspaces})


def _contact_row(contact_id: uuid.UUID, record: dict[str, Any]) -> tuple:
    check_identity(record)
    return (contact_id, record["workspace_id"], record.get("phone"), record.get("bsuid"),
            record.get("parent_bsuid"), record.get("username"), record.get("name"), record.get("kapso_name"),
            record.get("email"), record.get("lead_status", "new"), record.get("lead_score", 0),
            record.get("tags", []), record["created_at"], record.get("updated_at") or record["created_at"])


def _conversation_row(conversation_id: uuid.UUID, ws: str, contact_id: uuid.UUID, conv: dict[str, Any]) -> tuple:
    return (conversation_id, ws, contact_id, conv.get("status", "open"), conv.get("unread_count", 0),
            conv.get("last_message_at"), conv.get("last_message_preview"), conv["created_at"], conv.get("status_at"))


def _message_row(ws: str, conversation_id: uuid.UUID, m: dict[str, Any]) -> tuple:
    return (ws, conversation_id, m["direction"], m.get("content"), m.get("message_type", "text"),
            m.get("kapso_message_id"), m.get("status"), m["created_at"], m.get("error_code"), m.get("error_title"))


PLAN = ("contacts (id, workspace_id, phone, bsuid, parent_bsuid, username, name, kapso_name, email, lead_status, "
        "lead_score, tags, created_at, updated_at)",
        "contact_notes (workspace_id, contact_id, content, created_at)",
        "conversations (id, workspace_id, contact_id, status, unread_count, last_message_at, last_message_preview, "
        "created_at, status_at)",
        "messages (workspace_id, conversation_id, direction, content, message_type, kapso_message_id, status, "
        "created_at, error_code, error_title)")


def _copy_chunk(conn: psycopg.Connection, chunk: list[dict[str, Any]]) -> dict[str, int]:
    contacts, notes, conversations, messages = [], [], [], []
    for record in chunk:
        contact_id, ws = uuid.uuid4(), record["workspace_id"]
        contacts.append(_contact_row(contact_id, record))
        notes += [(ws, contact_id, n["content"], n["created_at"]) for n in record.get("notes", [])]
        conv = record.get("conversation")
        if conv is not None:
            conversation_id = uuid.uuid4()
            conversations.append(_conversation_row(conversation_id, ws, contact_id, conv))
            messages += [_message_row(ws, conversation_id, m) for m in conv["messages"]]
    with conn.transaction(), conn.cursor() as cur:
        for target, rows in zip(PLAN, (contacts, notes, conversations, messages), strict=True):
            with cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    return {"contacts": len(contacts), "notes": len(notes), "conversations": len(conversations),
            "messages": len(messages)}


def copy_contacts(conn: psycopg.Connection, records: Iterable[dict[str, Any]], chunk_size: int = 2000,
                  on_chunk: Callable[[dict[str, int]], None] | None = None) -> dict[str, int]:
    """COPY a stream of contacts; `on_chunk` sees each chunk's row counts."""
    totals = dict.fromkeys(("contacts", "notes", "conversations", "messages"), 0)
    iterator = iter(records)
    while chunk := list(islice(iterator, chunk_size)):
        counts = _copy_chunk(conn, chunk)
        for key, value in counts.items():
            totals[key] += value
        if on_chunk is not None:
            on_chunk(counts)
    return totals
