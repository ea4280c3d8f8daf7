"""`flask --app app db import-legacy`: the original CRM's database into Kontak's tables (docs/contract.md §12).

The source is only read, in one READ ONLY REPEATABLE READ transaction (one
consistent snapshot). The target is written in one transaction: an
interrupted import leaves nothing behind, and a re-run writes nothing new.

Rules (docs/own-data.md repeats them for operators):
- Phones: `phone_normalized` when present, else `phone`, through docs/contract.md §4
  with DEFAULT_REGION. A contact whose phone does not normalise is rejected
  (listed, masked) with its notes, conversations and messages.
- Contacts that normalise to the same number in one workspace are merged:
  created_at is the earliest; name, kapso_name, email and lead_status come
  from the most recent contact (updated_at, else created_at) that has one;
  lead_score is the highest; tags are the union; notes are all kept.
- A contact without created_at gets the earliest time known about it (its
  notes, conversations, messages); with none at all, its workspace's
  created_at in Kontak (for a source without workspace times: when the first
  import created it), so a re-run computes the same value.
  A note or message without created_at gets its conversation's, else its
  contact's.
- Several conversations of one (merged) contact become one: all their
  messages; last_message_at the latest of their last_message_at and message
  times; status, unread_count and preview of the most recent one; created_at
  the earliest.
- Idempotence keys: contacts by (workspace_id, phone), the conversation by
  contact, notes and messages by (workspace_id, legacy_id) = the source
  row's id, and messages also by (workspace_id, kapso_message_id).
  An existing contact takes the CRM's fields, keeps a kapso_name it already
  has, and keeps the earliest created_at; an existing conversation keeps its
  status and takes the later last_message_at.
- Values (legacy_values.py): tags are a list without NULLs (a text
  column holding a PostgreSQL array literal is parsed as one, other text is
  split on commas); lead_score is a number, or text holding one (anything else
  is 0); a note or message whose content is over max_text_bytes
  (contract/limits.json: what one Convex document can hold) is not imported; a
  workspace without a name takes its id. Each is listed per row.
- Types: workspace ids must be UUIDs (the workspace_id callers send); times
  must be timestamps or dates (without a time zone: read as UTC). Another type
  stops the import with one line naming the column, before anything is written.
- Identity (docs/contract.md §4a): the CRM knows people by phone only, so the
  phone stays required here and bsuid, parent_bsuid and username are never
  written: a contact the webhooks already linked to a BSUID keeps it (and is
  found by it with the CRM's fields); a contact Kontak knows by its BSUID
  alone stays apart until a delivery carrying both merges them
  (docs/webhook.md §7.5).
"""


from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from commands.connection import connection_label
from commands.db.legacy_source import (
    CHUNK,
    OPTIONAL,
    TABLES,
    ImportReport,
    Key,
    Source,
    canonical_uuid,
    read_contacts,
)
from commands.db.legacy_values import MAX_TEXT_BYTES, read_count, text_too_large
from services.phones import mask_phone

# --- writing the target ------------------------------------------------------------------------------------------

STAGING = """
CREATE TEMP TABLE legacy_contacts (workspace_id uuid, phone text, name text, kapso_name text, email text,
    lead_status text, lead_score int, tags text[], created_at timestamptz(3), updated_at timestamptz(3)) ON COMMIT DROP;
CREATE TEMP TABLE legacy_conversations (workspace_id uuid, phone text, status text, unread_count int,
    last_message_at timestamptz(3), last_message_preview text, created_at timestamptz(3)) ON COMMIT DROP;
CREATE TEMP TABLE legacy_notes (seq bigint, workspace_id uuid, phone text, legacy_id text, content text,
    created_at timestamptz(3)) ON COMMIT DROP;
CREATE TEMP TABLE legacy_messages (seq bigint, workspace_id uuid, phone text, legacy_id text, direction text,
    content text, message_type text, kapso_message_id text, status text, created_at timestamptz(3)) ON COMMIT DROP;
"""


def _upsert(values: dict[str, str], conflict: str, table: str, alias: str, select: str) -> str:
    """INSERT … ON CONFLICT DO UPDATE that touches a row only when something changes."""
    columns = ", ".join(values)
    new = ", ".join(values.values())
    old = ", ".join(f"{alias}.{c}" for c in values)
    return (f"INSERT INTO {table} AS {alias} ({columns}) {select} ON CONFLICT ({conflict}) DO UPDATE SET "
            f"({columns}) = ROW({new}) WHERE ROW({old}) IS DISTINCT FROM ROW({new}) RETURNING (xmax = 0)")


CONTACT_UPSERT = _upsert(
    {"workspace_id": "EXCLUDED.workspace_id", "phone": "EXCLUDED.phone",
     "name": "COALESCE(EXCLUDED.name, c.name)", "kapso_name": "COALESCE(c.kapso_name, EXCLUDED.kapso_name)",
     "email": "COALESCE(EXCLUDED.email, c.email)", "lead_status": "EXCLUDED.lead_status",
     "lead_score": "EXCLUDED.lead_score", "tags": "EXCLUDED.tags",
     "created_at": "LEAST(c.created_at, EXCLUDED.created_at)",
     "updated_at": "GREATEST(c.updated_at, EXCLUDED.updated_at)"},
    "workspace_id, phone", "contacts", "c",
    "SELECT workspace_id, phone, name, kapso_name, email, lead_status, lead_score, tags, created_at, updated_at "
    "FROM legacy_contacts")

CONVERSATION_UPSERT = _upsert(
    {"workspace_id": "v.workspace_id", "contact_id": "v.contact_id", "status": "v.status",
     "unread_count": "v.unread_count", "last_message_at": "GREATEST(v.last_message_at, EXCLUDED.last_message_at)",
     "last_message_preview": "v.last_message_preview", "created_at": "LEAST(v.created_at, EXCLUDED.created_at)"},
    "contact_id", "conversations", "v",
    "SELECT s.workspace_id, c.id, s.status, s.unread_count, s.last_message_at, s.last_message_preview, s.created_at "
    "FROM legacy_conversations s JOIN contacts c ON c.workspace_id = s.workspace_id AND c.phone = s.phone")

WORKSPACE_UPSERT = _upsert(
    {"id": "EXCLUDED.id", "name": "EXCLUDED.name", "kapso_phone_id": "EXCLUDED.kapso_phone_id",
     "created_at": "LEAST(w.created_at, EXCLUDED.created_at)"},
    "id", "workspaces", "w", "SELECT %s::uuid, %s, %s, COALESCE(%s::timestamptz, %s::timestamptz)")

NOTES_INSERT = """
INSERT INTO contact_notes (workspace_id, contact_id, content, created_at, legacy_id)
SELECT s.workspace_id, c.id, s.content, s.created_at, s.legacy_id
FROM legacy_notes s JOIN contacts c ON c.workspace_id = s.workspace_id AND c.phone = s.phone
ORDER BY s.created_at, s.seq
ON CONFLICT DO NOTHING"""

MESSAGES_INSERT = """
INSERT INTO messages (workspace_id, conversation_id, direction, content, message_type, kapso_message_id, status,
                      created_at, legacy_id)
SELECT s.workspace_id, v.id, s.direction, s.content, s.message_type, s.kapso_message_id, s.status, s.created_at,
       s.legacy_id
FROM legacy_messages s JOIN contacts c ON c.workspace_id = s.workspace_id AND c.phone = s.phone
JOIN conversations v ON v.contact_id = c.id
ORDER BY s.created_at, s.seq
ON CONFLICT DO NOTHING"""


def _count_upsert(cur: psycopg.Cursor, report: ImportReport, table: str) -> None:
    for (inserted,) in cur.fetchall():
        report.inserted[table] += int(inserted)
        report.updated[table] += int(not inserted)


def _copy(cur: psycopg.Cursor, target: str, rows: list[tuple]) -> None:
    with cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _row_key(prefix: str, record: dict[str, Any], parts: tuple, seen: dict[str, int]) -> str:
    """The source id when the table has one, else a hash of the row (and its occurrence) that a re-run repeats."""
    if record.get("id") is not None:
        return f"{prefix}:{record['id']}"
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:24]
    seen[digest] = seen.get(digest, 0) + 1
    return f"{prefix}:{digest}:{seen[digest]}"


class LegacyImport:
    """One import: the source snapshot, the target transaction, the report."""

    def __init__(self, src: Source, target: psycopg.Connection, region: str, report: ImportReport,
                 tick: Callable[[], None]) -> None:
        self.src, self.target, self.region, self.report, self.tick = src, target, region, report, tick
        self.fallback = datetime.now(UTC)
        self.contact_key: dict[str, Key] = {}
        self.contact_created: dict[Key, datetime] = {}
        self.conversation_key: dict[str, Key] = {}
        self.conversation_created: dict[str, datetime] = {}

    def run(self) -> None:
        with self.target.transaction(), self.target.cursor() as cur:
            cur.execute(STAGING)
            workspaces = self.workspaces(cur)
            self.contacts(cur, workspaces)
            self.conversations(cur)
            self.notes(cur)
            self.messages(cur)

    def workspaces(self, cur: psycopg.Cursor) -> dict[str, datetime]:
        """Upserted; returns each one's created_at in Kontak (the contacts' last-resort time)."""
        src, ids = self.src, []
        query = sql.SQL("SELECT t.id::text AS id, t.name AS name, {} AS kapso_phone_id, {} AS created_at "
                        "FROM {} t ORDER BY t.id").format(src.col("workspaces", "kapso_phone_id"),
                                                          src.col("workspaces", "created_at"), src.table("workspaces"))
        for w in src.rows(query, "workspaces"):
            self.tick()
            self.report.read["workspaces"] += 1
            workspace = canonical_uuid(w["id"])
            if workspace is None:  # a text column holding something else: its contacts go with it
                self.report.skipped["workspaces"] += 1
                self.report.rejects.append(f"workspace {w['id']!r}: id is not a UUID")
                continue
            name = str(w["name"]).strip() if w["name"] is not None else ""
            if not name:  # Kontak's name is required but only descriptive: nothing reads it
                self.report.adjusted.append(f"workspace {workspace}: no name in the source; its id stored as name")
            cur.execute(WORKSPACE_UPSERT, (workspace, name or workspace, w["kapso_phone_id"], w["created_at"],
                                           self.fallback))
            _count_upsert(cur, self.report, "workspaces")
            ids.append(workspace)
        cur.execute("SELECT id::text, created_at FROM workspaces WHERE id = ANY(%s::uuid[])", (ids,))
        return dict(cur.fetchall())

    def contacts(self, cur: psycopg.Cursor, workspaces: dict[str, datetime]) -> None:
        self.contact_key, merged = read_contacts(self.src, self.region, workspaces, self.report, self.tick)
        rows = [m.row() for m in merged]
        self.contact_created = {(r[0], r[1]): r[8] for r in rows}
        _copy(cur, "legacy_contacts", rows)
        cur.execute(CONTACT_UPSERT)
        _count_upsert(cur, self.report, "contacts")

    def _conversation_rows(self) -> dict[Key, list[dict[str, Any]]]:
        src = self.src
        newest = (sql.SQL("(SELECT max(m.created_at)::timestamptz FROM {} m WHERE m.conversation_id = t.id)")
                  .format(src.table("messages")) if src.has("messages", "created_at") else sql.SQL("NULL"))
        fields = [sql.SQL("{} AS {}").format(src.col("conversations", name), sql.Identifier(name))
                  for name in OPTIONAL["conversations"]]
        query = sql.SQL("SELECT t.id::text AS id, t.contact_id::text AS contact_id, {}, {} AS newest_message "
                        "FROM {} t ORDER BY t.id").format(sql.SQL(", ").join(fields), newest,
                                                          src.table("conversations"))
        groups: dict[Key, list[dict[str, Any]]] = {}
        for record in src.rows(query, "conversations"):
            self.tick()
            self.report.read["conversations"] += 1
            key = self.contact_key.get(record["contact_id"])
            if key is None:
                self.report.skipped["conversations"] += 1
                continue
            self.conversation_key[record["id"]] = key
            self.conversation_created[record["id"]] = record["created_at"] or self.contact_created[key]
            groups.setdefault(key, []).append(record)
        return groups

    def _preview(self, key: Key, record: dict[str, Any]) -> str | None:
        """The preview, unless it is over what one Convex document holds (then none, listed)."""
        size = text_too_large(record["last_message_preview"])
        if size is None:
            return record["last_message_preview"]
        self.report.adjusted.append(f"conversation {record['id']} (workspace {key[0]}, {mask_phone(key[1])}): "
                                    f"preview of {size:,} bytes over max_text_bytes ({MAX_TEXT_BYTES:,}) not stored")
        return None

    def conversations(self, cur: psycopg.Cursor) -> None:
        rows = []
        for key, group in self._conversation_rows().items():
            times = [t for r in group for t in (r["last_message_at"], r["newest_message"]) if t is not None]
            epoch = datetime.min.replace(tzinfo=UTC)
            recent = max(group, key=lambda r: (max([t for t in (r["last_message_at"], r["newest_message"])
                                                    if t is not None], default=epoch), r["created_at"] or epoch,
                                               r["id"]))
            created = min(self.conversation_created[r["id"]] for r in group)
            unread = sum(read_count(r["unread_count"]) for r in group)
            rows.append((*key, recent["status"] or "open", unread, max(times, default=None),
                         self._preview(key, recent), created))
            if len(group) > 1:
                self.report.merged_conversations.append(
                    f"workspace {key[0]}: {mask_phone(key[1])} <- {len(group)} conversations")
        _copy(cur, "legacy_conversations", rows)
        cur.execute(CONVERSATION_UPSERT)
        _count_upsert(cur, self.report, "conversations")

    def _ordered(self, table: str, fields: list[str]) -> sql.Composable:
        src = self.src
        selected = [sql.SQL("{} AS {}").format(src.col(table, name), sql.Identifier(name)) for name in fields]
        order = sql.SQL(", ").join([src.col(table, "created_at"), src.col(table, "id")])
        return sql.SQL("SELECT {} FROM {} t ORDER BY {} NULLS FIRST").format(
            sql.SQL(", ").join(selected), src.table(table), order)

    def notes(self, cur: psycopg.Cursor) -> None:
        seen: dict[str, int] = {}
        rows: list[tuple] = []
        query = self._ordered("contact_notes", ["id", "contact_id", "content", "created_at"])
        for seq, record in enumerate(self.src.rows(query, "contact_notes")):
            self.tick()
            self.report.read["contact_notes"] += 1
            key = self.contact_key.get(str(record["contact_id"]))
            if key is None or record["content"] is None or self._too_large("note", record, key):
                self.report.skipped["contact_notes"] += 1
                continue
            parts = (str(record["contact_id"]), record["content"], str(record["created_at"]))
            created = record["created_at"] or self.contact_created[key]
            rows.append((seq, *key, _row_key("note", record, parts, seen), record["content"], created))
            if len(rows) >= CHUNK:
                self._flush(cur, "legacy_notes", NOTES_INSERT, rows, "contact_notes")
        self._flush(cur, "legacy_notes", NOTES_INSERT, rows, "contact_notes")

    def messages(self, cur: psycopg.Cursor) -> None:
        seen: dict[str, int] = {}
        rows: list[tuple] = []
        fields = ["id", "conversation_id", "direction", "content", "message_type", "kapso_message_id", "status",
                  "created_at"]
        for seq, m in enumerate(self.src.rows(self._ordered("messages", fields), "messages")):
            self.tick()
            self.report.read["messages"] += 1
            conversation = str(m["conversation_id"])
            key = self.conversation_key.get(conversation)
            direction = DIRECTIONS.get(str(m["direction"] or "").strip().lower())
            if key is None or direction is None or self._too_large("message", m, key):
                self.report.skipped["messages"] += 1
                continue
            parts = (conversation, m["direction"], m["content"], m["kapso_message_id"], str(m["created_at"]))
            created = m["created_at"] or self.conversation_created[conversation]
            rows.append((seq, *key, _row_key("message", m, parts, seen), direction, m["content"],
                         m["message_type"] or "text", m["kapso_message_id"], m["status"], created))
            if len(rows) >= CHUNK:
                self._flush(cur, "legacy_messages", MESSAGES_INSERT, rows, "messages")
        self._flush(cur, "legacy_messages", MESSAGES_INSERT, rows, "messages")

    def _too_large(self, kind: str, record: dict[str, Any], key: Key) -> bool:
        """Is its content over what one Convex document holds? Then it is listed, and left out: stored in
        PostgreSQL it could never be copied to Convex (sync-convex would be refused it on every run)."""
        size = text_too_large(record["content"])
        if size is not None:
            which = f"{kind} {record['id']}" if record.get("id") is not None else f"a {kind}"
            self.report.too_large.append(f"{which} (workspace {key[0]}, {mask_phone(key[1])}): content of "
                                         f"{size:,} bytes")
        return size is not None

    def _flush(self, cur: psycopg.Cursor, staging: str, insert: str, rows: list[tuple], table: str) -> None:
        if not rows:
            return
        _copy(cur, staging, rows)
        cur.execute(insert)
        self.report.inserted[table] += cur.rowcount
        cur.execute(f"TRUNCATE {staging}")
        rows.clear()


DIRECTIONS = {"inbound": "inbound", "incoming": "inbound", "in": "inbound",
              "outbound": "outbound", "outgoing": "outbound", "out": "outbound"}


def import_legacy(source_dsn: str, target: psycopg.Connection, region: str, source_schema: str = "public",
                  progress: Callable[[int], Callable[[], None]] | None = None) -> ImportReport:
    """Import the CRM at `source_dsn` into `target` (autocommit, search_path at Kontak's schema).

    `progress(total_rows)` returns the tick called once per source row read.
    """
    report = ImportReport(connection_label(source_dsn))
    # UTF-8 whatever the source's encoding: a SQL_ASCII database would otherwise hand every text
    # (column names included) over as bytes. Its server checks the bytes are UTF-8 as it sends them.
    with psycopg.connect(source_dsn, autocommit=False, client_encoding="utf8") as source:
        source.read_only = True
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        source.execute("SET TIME ZONE 'UTC'")  # times without a time zone are read as UTC
        src = Source(source, source_schema)
        total = sum(src.count(table) for table in TABLES)
        tick = progress(total) if progress is not None else (lambda: None)
        LegacyImport(src, target, region, report, tick).run()
        source.rollback()
    return report
