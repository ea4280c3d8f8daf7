"""PostgreSQL -> Convex: everything Kontak holds, through the authenticated bulk import (docs/contract.md §12).

Contacts are read in (workspace_id, phone) order, the unique index's order,
and sent in batches with their notes, conversation and messages (oldest
first, the insertion order both backends break ties by). The import
replaces a contact stored under the same (workspace_id, phone), so sending a
batch twice stores it once: after each acknowledged batch the last key is
written to a state file, and a run killed half-way resumes after it.

Verification: counts per workspace and table (the deployment's COUNTS_PATH,
which pages through its indexes), then sampled lookups through both of
Kontak's routes, which must answer the same status and JSON. Any difference,
or a deployment without COUNTS_PATH, is a mismatch (the command exits 1).
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
from psycopg.conninfo import conninfo_to_dict

from commands.convex_admin import ConvexAdmin
from services.lookup_answer import format_timestamp
from services.phones import mask_phone

COUNTS_PATH = ConvexAdmin.COUNTS_PATH
TABLES = ConvexAdmin.COUNTED_TABLES
START = ("00000000-0000-0000-0000-000000000000", "")

CONTACTS_SQL = """
SELECT id, workspace_id::text, phone, name, kapso_name, email, lead_status, lead_score, tags, created_at, updated_at
FROM contacts WHERE (workspace_id, phone) > (%s::uuid, %s) ORDER BY workspace_id, phone LIMIT %s"""
NOTES_SQL = """SELECT contact_id, content, created_at FROM contact_notes WHERE contact_id = ANY(%s)
ORDER BY contact_id, created_at, id"""
CONVERSATIONS_SQL = """SELECT id, contact_id, status, unread_count, last_message_at, last_message_preview, created_at
FROM conversations WHERE contact_id = ANY(%s)"""
MESSAGES_SQL = """SELECT conversation_id, direction, content, message_type, kapso_message_id, status, created_at
FROM messages WHERE conversation_id = ANY(%s) ORDER BY conversation_id, created_at, id"""
PG_COUNTS_SQL = """
SELECT w.id::text,
       (SELECT count(*) FROM contacts t WHERE t.workspace_id = w.id),
       (SELECT count(*) FROM contact_notes t WHERE t.workspace_id = w.id),
       (SELECT count(*) FROM conversations t WHERE t.workspace_id = w.id),
       (SELECT count(*) FROM messages t WHERE t.workspace_id = w.id)
FROM workspaces w ORDER BY w.id"""


def target_label(database_url: str, schema: str) -> str:
    parts = conninfo_to_dict(database_url)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}#{schema}"


@dataclass
class SyncState:
    """What a previous run acknowledged, so a repeated run resumes after it."""

    path: Path
    source: str
    destination: str
    last: tuple[str, str] = START
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
        return cls(path, source, destination, tuple(saved["last"]), saved["contacts"], saved["rows"])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"source": self.source, "destination": self.destination,
                                         "last": list(self.last), "contacts": self.contacts, "rows": self.rows,
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


def read_batch(conn: psycopg.Connection, after: tuple[str, str], size: int) -> list[dict[str, Any]]:
    """Up to `size` contacts after `after`, in the data-set format of contract/demo_data.json."""
    contacts = conn.execute(CONTACTS_SQL, (*after, size)).fetchall()
    ids = [c[0] for c in contacts]
    notes = _group(conn.execute(NOTES_SQL, (ids,)).fetchall())
    conversations = {row[1]: row for row in conn.execute(CONVERSATIONS_SQL, (ids,)).fetchall()}
    messages = _group(conn.execute(MESSAGES_SQL, ([c[0] for c in conversations.values()],)).fetchall())
    records = []
    for cid, ws, phone, name, kapso_name, email, status, score, tags, created, updated in contacts:
        conversation = conversations.get(cid)
        records.append({
            "workspace_id": ws, "phone": phone, "name": name, "kapso_name": kapso_name, "email": email,
            "lead_status": status, "lead_score": score, "tags": list(tags or []),
            "created_at": format_timestamp(created), "updated_at": format_timestamp(updated),
            "notes": [{"content": n[1], "created_at": format_timestamp(n[2])} for n in notes.get(cid, [])],
            "conversation": None if conversation is None else _conversation(conversation, messages),
        })
    return records


def _conversation(row: tuple, messages: dict[Any, list[tuple]]) -> dict[str, Any]:
    conversation_id, _contact, status, unread, last, preview, created = row
    return {"status": status, "unread_count": unread, "last_message_at": format_timestamp(last),
            "last_message_preview": preview, "created_at": format_timestamp(created),
            "messages": [{"direction": m[1], "content": m[2], "message_type": m[3], "kapso_message_id": m[4],
                          "status": m[5], "created_at": format_timestamp(m[6])}
                         for m in messages.get(conversation_id, [])]}


def workspaces(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT id::text, name, kapso_phone_id, created_at FROM workspaces ORDER BY id").fetchall()
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

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


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
        for records in batches:
            admin.import_dataset({"workspaces": [], "contacts": records})
            rows = rows_in(records)
            state.last = (records[-1]["workspace_id"], records[-1]["phone"])
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


def _batches(conn: psycopg.Connection, state: SyncState, size: int) -> Iterator[list[dict[str, Any]]]:
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
                records = read_batch(conn, after, size)
                ahead.put(("batch", records))
                if not records:
                    return
                after = (records[-1]["workspace_id"], records[-1]["phone"])
        except BaseException as error:  # handed to the consumer, raised there
            ahead.put(("error", error))

    reader = threading.Thread(target=read, name="sync-convex-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == "error":
                raise value
            if not value:
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


# --- verification ------------------------------------------------------------------------------------------------

@dataclass
class Verification:
    lines: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    counts_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches


def postgres_counts(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    return {ws: dict(zip(TABLES, counts, strict=True)) for ws, *counts in conn.execute(PG_COUNTS_SQL).fetchall()}


def convex_counts(admin: ConvexAdmin, workspace_id: str) -> dict[str, int] | None:
    """The deployment's counts for one workspace, or None when it has no count endpoint (404)."""
    return admin.counts(workspace_id)


def verify_counts(conn: psycopg.Connection, admin: ConvexAdmin, report: Verification) -> None:
    """Every table of every PostgreSQL workspace: the same number of documents in Convex, or a mismatch."""
    started = time.perf_counter()
    expected_all = postgres_counts(conn)
    equal = 0
    for ws, expected in expected_all.items():
        actual = convex_counts(admin, ws)
        if actual is None:
            report.mismatches.append(f"counts: the deployment has no {COUNTS_PATH}: deploy the Convex functions "
                                     "of this version (npx convex deploy) so the copy can be verified")
            return
        report.counts_checked = True
        differ = [table for table in TABLES if expected[table] != actual[table]]
        for table in differ:
            report.mismatches.append(f"counts workspace {ws} {table}: postgres {expected[table]:,} "
                                     f"convex {actual[table]:,}")
        if not differ:
            equal += 1
    totals = {table: sum(c[table] for c in expected_all.values()) for table in TABLES}
    report.lines.append(f"counts: {equal} of {len(expected_all)} workspace(s) equal in every table "
                        f"(postgres {', '.join(f'{totals[t]:,} {t}' for t in TABLES)}) "
                        f"in {time.perf_counter() - started:.1f} s")


def verify_lookups(get: Callable[[str, dict[str, str]], tuple[int, Any]], probes: list[tuple[str, str]],
                   report: Verification) -> None:
    """Each probe through /api/contacts/by-phone and /by-phone-convex: equal status and JSON."""
    differing = 0
    for workspace_id, phone in probes:
        query = {"phone": phone, "workspace_id": workspace_id}
        postgres = get("/api/contacts/by-phone", query)
        convex = get("/api/contacts/by-phone-convex", query)
        if postgres != convex or postgres[0] != 200:
            differing += 1
            report.mismatches.append(f"lookup {workspace_id} {mask_phone(phone)}: postgres {postgres[0]} "
                                     f"{json.dumps(postgres[1])[:300]} / convex {convex[0]} "
                                     f"{json.dumps(convex[1])[:300]}")
    report.lines.append(f"lookups: {len(probes) - differing} of {len(probes)} equal on both routes")
