"""PostgreSQL -> Convex: everything Kontak holds, through the authenticated bulk import (docs/contract.md §12).

Contacts are read in id order (the primary key's index: a contact may have
no phone since migration 0005, so (workspace_id, phone) no longer orders
them all) and sent in batches with their notes, conversation and messages
(oldest first, the insertion order both backends break ties by), every
column the data-set format has, identity included (bsuid, parent_bsuid,
username; docs/contract.md §4a). The import replaces a contact stored under
the same BSUID or phone, so sending a batch twice stores it once: after
each acknowledged batch the last id is written to a state file, and a run
killed half-way resumes after it.

The copy is then verified (verification.py).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from services.convex.admin import ConvexAdmin
from services.identity import mask_bsuid
from services.lookup_answer import format_timestamp
from services.phones import mask_phone

START: str | None = None  # before the first contact
ORDER = "id"  # what `last` in the state file is; a state file of another order starts over

CONTACT_COLUMNS = ("workspace_id", "phone", "bsuid", "parent_bsuid", "username", "name", "kapso_name", "email",
                   "lead_status", "lead_score", "tags", "created_at", "updated_at")
_CONTACTS = f"SELECT id, {', '.join(CONTACT_COLUMNS).replace('workspace_id', 'workspace_id::text', 1)} FROM contacts"
# Two statements, not `$1 IS NULL OR id > $1`: a generic plan of that could not walk the primary key.
FIRST_CONTACTS_SQL = f"{_CONTACTS} ORDER BY id LIMIT %s"
CONTACTS_SQL = f"{_CONTACTS} WHERE id > %s::uuid ORDER BY id LIMIT %s"
BY_ID_SQL = f"{_CONTACTS} WHERE id = ANY(%s::uuid[])"
NOTES_SQL = """SELECT contact_id, content, created_at FROM contact_notes WHERE contact_id = ANY(%s)
ORDER BY contact_id, created_at, id"""
CONVERSATIONS_SQL = """SELECT id, contact_id, status, unread_count, last_message_at, last_message_preview, created_at,
       status_at
FROM conversations WHERE contact_id = ANY(%s)"""
MESSAGES_SQL = """SELECT conversation_id, direction, content, message_type, kapso_message_id, status, created_at,
       error_code, error_title
FROM messages WHERE conversation_id = ANY(%s) ORDER BY conversation_id, created_at, id"""
# Optional in the data-set format: sent only when set, so a record is what the format says and no more.
OPTIONAL = ("bsuid", "parent_bsuid", "username", "status_at", "error_code", "error_title")


@dataclass
class SyncState:
    """What a previous run acknowledged, so a repeated run resumes after it."""

    path: Path
    source: str
    destination: str
    last: str | None = START  # the id of the last contact acknowledged
    contacts: int = 0
    rows: int = 0
    done: bool = False

    @classmethod
    def load(cls, path: Path, source: str, destination: str) -> SyncState:
        fresh = cls(path, source, destination)
        if not path.exists():
            return fresh
        saved = json.loads(path.read_text())
        if (saved.get("source"), saved.get("destination")) != (source, destination) or saved.get("done"):
            return fresh
        if saved.get("order") != ORDER:  # an older version's (workspace_id, phone) position: send all again
            return fresh
        return cls(path, source, destination, saved["last"], saved["contacts"], saved["rows"])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"source": self.source, "destination": self.destination, "order": ORDER,
                                         "last": self.last, "contacts": self.contacts, "rows": self.rows,
                                         "done": self.done}))
        os.replace(temporary, self.path)  # atomic: a kill never leaves half a state file

    @property
    def resumed(self) -> bool:
        return self.last != START


def _group(rows: list[tuple], key: int = 0) -> dict[Any, list[tuple]]:
    grouped: dict[Any, list[tuple]] = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped


@dataclass
class Batch:
    records: list[dict[str, Any]]  # the data-set format of contract/demo_data.json
    last: str | None  # the id of its last contact: where the next batch starts
    ids: list[str] = field(default_factory=list)  # each record's contact id, in the same order


def _record(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as a data-set record: the optional fields only when set."""
    return {k: v for k, v in values.items() if k not in OPTIONAL or v is not None}


def read_batch(conn: psycopg.Connection, after: str | None, size: int) -> Batch:
    """Up to `size` contacts after the contact with id `after` (None: from the first), in id order."""
    contacts = (conn.execute(CONTACTS_SQL, (after, size)) if after is not None
                else conn.execute(FIRST_CONTACTS_SQL, (size,))).fetchall()
    records = _records(conn, contacts)
    return Batch([record for _id, record in records], str(contacts[-1][0]) if contacts else after,
                 [str(cid) for cid, _record in records])


def read_contacts(conn: psycopg.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of the contacts among `ids` that exist, by id (the follower's read)."""
    contacts = conn.execute(BY_ID_SQL, (ids,)).fetchall()
    return {str(cid): record for cid, record in _records(conn, contacts)}


def _records(conn: psycopg.Connection, contacts: list[tuple]) -> list[tuple[Any, dict[str, Any]]]:
    """(id, data-set record) of each contact row, with its notes, conversation and messages."""
    ids = [c[0] for c in contacts]
    notes = _group(conn.execute(NOTES_SQL, (ids,)).fetchall())
    conversations = {row[1]: row for row in conn.execute(CONVERSATIONS_SQL, (ids,)).fetchall()}
    messages = _group(conn.execute(MESSAGES_SQL, ([c[0] for c in conversations.values()],)).fetchall())
    records = []
    for cid, *values in contacts:
        contact = dict(zip(CONTACT_COLUMNS, values, strict=True))
        conversation = conversations.get(cid)
        records.append((cid, _record({
            **contact, "tags": list(contact["tags"] or []), "created_at": format_timestamp(contact["created_at"]),
            "updated_at": format_timestamp(contact["updated_at"]),
            "notes": [{"content": n[1], "created_at": format_timestamp(n[2])} for n in notes.get(cid, [])],
            "conversation": None if conversation is None else _conversation(conversation, messages)})))
    return records


def _conversation(row: tuple, messages: dict[Any, list[tuple]]) -> dict[str, Any]:
    conversation_id, _contact, status, unread, last, preview, created, status_at = row
    return _record({
        "status": status, "unread_count": unread, "last_message_at": format_timestamp(last),
        "last_message_preview": preview, "created_at": format_timestamp(created),
        "status_at": format_timestamp(status_at),
        "messages": [_record({"direction": m[1], "content": m[2], "message_type": m[3], "kapso_message_id": m[4],
                               "status": m[5], "created_at": format_timestamp(m[6]), "error_code": m[7],
                               "error_title": m[8]})
                     for m in messages.get(conversation_id, [])]})


def workspaces(conn: psycopg.Connection, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Every workspace as a data-set record, or those among `ids` that exist (the follower's read)."""
    where = "" if ids is None else "WHERE id = ANY(%s::uuid[])"
    rows = conn.execute(f"SELECT id::text, name, kapso_phone_id, created_at FROM workspaces {where} ORDER BY id",
                        () if ids is None else (ids,)).fetchall()
    return [{"id": w, "name": n, "kapso_phone_id": k, "created_at": format_timestamp(c)} for w, n, k, c in rows]


def rows_in(records: list[dict[str, Any]]) -> int:
    total = 0
    for record in records:
        conversation = record["conversation"]
        total += 1 + len(record["notes"]) + (0 if conversation is None else 1 + len(conversation["messages"]))
    return total


@dataclass
class SyncResult:
    contacts: int = 0
    rows: int = 0
    seconds: float = 0.0
    resumed_after: int = 0
    # Rows Convex could not take (a document over its size limit, a NULL in an array): one line each,
    # naming the contact masked, never a value. The rest of their batch is copied.
    refused: list[str] = field(default_factory=list)
    refused_rows: int = 0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def refusal_lines(records: list[dict[str, Any]], refused: list[dict[str, Any]]) -> list[str]:
    """The import's `refused` entries (convex/convex/importData.ts) as report lines."""
    lines = []
    for entry in refused:
        record = records[entry["contact"]] if 0 <= entry.get("contact", -1) < len(records) else {}
        who = mask_phone(record["phone"]) if record.get("phone") else mask_bsuid(record.get("bsuid"))
        where = entry["row"] + ("" if entry.get("index") is None else f" {entry['index']}")
        lines.append(f"refused {where} of contact {who} in workspace {record.get('workspace_id', '?')}: "
                     f"{entry['reason']} ({entry['rows']} row(s) not copied)")
    return lines


def sync(conn: psycopg.Connection, admin: ConvexAdmin, state: SyncState, batch: int,
         on_batch: Callable[[int, int], None] | None = None) -> SyncResult:
    """Copy every contact after `state.last`; `on_batch(contacts, rows)` after each acknowledged batch."""
    result = SyncResult(resumed_after=state.contacts)
    started = time.perf_counter()
    spaces = workspaces(conn)
    admin.import_dataset({"workspaces": spaces, "contacts": []})
    result.rows += len(spaces)
    # closing(): on an error the reader thread stops before anyone uses the connection again.
    with closing(_batches(conn, state, batch)) as batches:
        for acknowledged in batches:
            records = acknowledged.records
            refused = admin.import_dataset({"workspaces": [], "contacts": records}).get("refused", [])
            result.refused += refusal_lines(records, refused)
            result.refused_rows += sum(entry["rows"] for entry in refused)
            rows = rows_in(records)
            state.last = acknowledged.last
            state.contacts += len(records)
            state.rows += rows
            state.save()
            result.contacts += len(records)
            result.rows += rows
            if on_batch is not None:
                on_batch(len(records), rows)
    state.done = True
    state.save()
    result.seconds = time.perf_counter() - started
    return result


def _batches(conn: psycopg.Connection, state: SyncState, size: int) -> Iterator[Batch]:
    """The batches after `state.last`, each read from PostgreSQL while the previous one is being imported.

    One reader thread, one batch ahead (the connection is used by that thread
    alone until the iteration ends); the import is the slow side, so the reads
    cost no wall time. Closing the iterator early (an error, a kill) stops the
    reader before the connection is used again.
    """
    ahead: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def read() -> None:
        after = state.last
        try:
            while not stop.is_set():
                batch = read_batch(conn, after, size)
                ahead.put(("batch", batch))
                if not batch.records:
                    return
                after = batch.last
        except BaseException as error:  # handed to the consumer, raised there
            ahead.put(("error", error))

    reader = threading.Thread(target=read, name="sync-convex-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == "error":
                raise value
            if not value.records:
                return
            yield value
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting to put, then let it finish its read
            try:
                ahead.get(timeout=0.05)
            except queue.Empty:
                pass
        reader.join()
