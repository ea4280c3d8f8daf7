"""A data set in PostgreSQL: loaded in one transaction (the demo data, the tests' fixtures), and
contacts drawn from it at random (compare's real-data probes, sync-convex's verification).

The data-set format is contract/demo_data.json's; the bulk loader for millions of contacts (COPY) is
bulk.py beside it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import psycopg


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


# The data-set format's optional fields (contract/demo_data.json; docs/contract.md §2, §4a).
IDENTITY_FIELDS = ("bsuid", "parent_bsuid", "username")
MESSAGE_ERROR_FIELDS = ("error_code", "error_title")


def check_identity(contact: dict[str, Any]) -> None:
    """A data-set contact is found by its phone or its BSUID: one of them must be there."""
    if not contact.get("phone") and not contact.get("bsuid"):
        raise ValueError(f"data set: a contact of workspace {contact.get('workspace_id')} has neither a phone "
                         "nor a bsuid")


def load_dataset(conn: psycopg.Connection, dataset: dict[str, Any]) -> dict[str, int]:
    """Insert a data set (contract/demo_data.json format) in one transaction.

    Workspaces are upserted; a contact already stored under the same
    (workspace_id, bsuid) or (workspace_id, phone) is replaced, so loading
    the same data twice leaves the same rows.
    """
    counts = dict.fromkeys(("workspaces", "contacts", "notes", "conversations", "messages"), 0)
    with conn.transaction(), conn.cursor() as cur:
        for ws in dataset.get("workspaces", []):
            cur.execute(
                """INSERT INTO workspaces (id, name, kapso_phone_id, created_at)
                   VALUES (%s, %s, %s, COALESCE(%s, now()))
                   ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                       kapso_phone_id = EXCLUDED.kapso_phone_id""",
                (ws["id"], ws["name"], ws.get("kapso_phone_id"), _ts(ws.get("created_at"))),
            )
            counts["workspaces"] += 1
        for contact in dataset.get("contacts", []):
            _insert_contact(cur, contact, counts)
    return counts


def _optional(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields `record` gives. The others are not named in the INSERT (left NULL), so a data set
    without them also loads into a database at an older migration (the upgrade tests fill one that way)."""
    return {name: record[name] for name in names if record.get(name) is not None}


def _replace(cur: psycopg.Cursor, ws: str, contact: dict[str, Any]) -> None:
    """Delete what stored contact holds this contact's BSUID or phone: both are unique per workspace, and the
    data set is the truth (the lookups go BSUID first, so a stale holder of either would answer)."""
    if contact.get("bsuid"):
        cur.execute("DELETE FROM contacts WHERE workspace_id = %s AND (bsuid = %s OR phone = %s)",
                    (ws, contact["bsuid"], contact.get("phone")))
    else:
        cur.execute("DELETE FROM contacts WHERE workspace_id = %s AND phone = %s", (ws, contact["phone"]))


def _insert_contact(cur: psycopg.Cursor, contact: dict[str, Any], counts: dict[str, int]) -> None:
    check_identity(contact)
    ws = contact["workspace_id"]
    _replace(cur, ws, contact)
    values = {"workspace_id": ws, "phone": contact.get("phone"), **_optional(contact, IDENTITY_FIELDS),
              "name": contact.get("name"), "kapso_name": contact.get("kapso_name"), "email": contact.get("email"),
              "lead_status": contact.get("lead_status", "new"), "lead_score": contact.get("lead_score", 0),
              "tags": contact.get("tags", []), "created_at": _ts(contact["created_at"]),
              "updated_at": _ts(contact.get("updated_at") or contact["created_at"])}
    cur.execute(f"INSERT INTO contacts ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) "
                "RETURNING id", list(values.values()))
    contact_id = cur.fetchone()[0]
    counts["contacts"] += 1
    notes = contact.get("notes", [])
    cur.executemany(
        "INSERT INTO contact_notes (workspace_id, contact_id, content, created_at) VALUES (%s, %s, %s, %s)",
        [(ws, contact_id, n["content"], _ts(n["created_at"])) for n in notes],
    )
    counts["notes"] += len(notes)
    if contact.get("conversation") is not None:
        _insert_conversation(cur, ws, contact_id, contact["conversation"], counts)


def _insert_conversation(cur: psycopg.Cursor, ws: str, contact_id: Any, conv: dict[str, Any],
                         counts: dict[str, int]) -> None:
    values = {"workspace_id": ws, "contact_id": contact_id, "status": conv.get("status", "open"),
              "unread_count": conv.get("unread_count", 0), "last_message_at": _ts(conv.get("last_message_at")),
              "last_message_preview": conv.get("last_message_preview"), "created_at": _ts(conv["created_at"]),
              **{k: _ts(v) for k, v in _optional(conv, ("status_at",)).items()}}
    cur.execute(f"INSERT INTO conversations ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) "
                "RETURNING id", list(values.values()))
    conversation_id = cur.fetchone()[0]
    counts["conversations"] += 1
    messages = conv.get("messages", [])
    # The error columns are named only when a message of this conversation has one (see _optional).
    errors = [name for name in MESSAGE_ERROR_FIELDS if any(m.get(name) is not None for m in messages)]
    columns = ["workspace_id", "conversation_id", "direction", "content", "message_type", "kapso_message_id",
               "status", "created_at", *errors]
    cur.executemany(
        f"INSERT INTO messages ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
        [(ws, conversation_id, m["direction"], m.get("content"), m.get("message_type", "text"),
          m.get("kapso_message_id"), m.get("status"), _ts(m["created_at"]), *(m.get(e) for e in errors))
         for m in messages],
    )
    counts["messages"] += len(messages)


class Sampled(NamedTuple):
    """A stored contact drawn for probing: where it lives and its identifiers (one may be None)."""

    workspace_id: str
    phone: str | None
    bsuid: str | None


def sample_contacts(conn: psycopg.Connection, count: int, seed: float | None = None) -> list[Sampled]:
    """`count` random stored contacts (one scan); `seed` in [-1, 1] repeats a draw."""
    with conn.transaction():
        if seed is not None:
            conn.execute("SELECT setseed(%s)", (seed,))
        rows = conn.execute("SELECT workspace_id::text, phone, bsuid FROM contacts ORDER BY random() LIMIT %s",
                            (count,)).fetchall()
    return [Sampled(*row) for row in rows]
