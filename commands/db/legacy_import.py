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
- Values (commands/legacy_values.py): tags are a list without NULLs (a text
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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from commands.legacy_values import MAX_TEXT_BYTES, read_count, read_score, read_tags, text_too_large
from services.phones import InvalidPhone, mask_phone, normalize_phone

TABLES = ("workspaces", "contacts", "conversations", "contact_notes", "messages")
CHUNK = 5000
OPTIONAL = {
    "workspaces": ("kapso_phone_id", "created_at"),
    "contacts": ("phone_normalized", "name", "kapso_name", "email", "lead_status", "lead_score", "tags",
                 "created_at", "updated_at"),
    "conversations": ("status", "unread_count", "last_message_at", "last_message_preview", "created_at"),
    "contact_notes": ("id", "created_at"),
    "messages": ("id", "message_type", "kapso_message_id", "status", "created_at"),
}
REQUIRED = {"workspaces": ("id", "name"), "contacts": ("id", "workspace_id", "phone"),
            "conversations": ("id", "contact_id"), "contact_notes": ("contact_id", "content"),
            "messages": ("conversation_id", "direction", "content")}
Key = tuple[str, str]  # (workspace_id, E.164)
# Columns whose values Kontak computes with: their source type must be one of these (information_schema's names).
UUID_TYPES = ("uuid", "text", "character varying", "character")
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
TYPED = {("workspaces", "id"): UUID_TYPES, ("contacts", "workspace_id"): UUID_TYPES,
         **{(table, column): TIME_TYPES for table, columns in OPTIONAL.items() for column in columns
            if column in ("created_at", "updated_at", "last_message_at")}}


class LegacyImportError(RuntimeError):
    """The source cannot be imported (missing table or column); nothing was written."""


@dataclass
class ImportReport:
    source: str
    read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    inserted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    rejects: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)
    merged_contacts: list[str] = field(default_factory=list)
    merged_conversations: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(self.inserted.values()) + sum(self.updated.values())


def canonical_uuid(value: Any) -> str | None:
    """A workspace id as Kontak writes it (lower-case, with dashes), None when it is no UUID."""
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        return None


def describe_source(dsn: str) -> str:
    """host:port/dbname, never the password."""
    parts = conninfo_to_dict(dsn)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def mask_raw(phone: str | None) -> str:
    """A phone that did not normalise, masked the way the logs mask: enough to find it, too little to dial."""
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    if len(digits) <= 6:
        return f"'{'*' * len(digits)}' ({len(phone or '')} chars)"
    return f"{digits[:3]}****{digits[-3:]} ({len(phone or '')} chars)"


# --- reading the source -----------------------------------------------------------------------------------------

class Source:
    """The original CRM's tables, read in one read-only snapshot."""

    def __init__(self, conn: psycopg.Connection, schema: str) -> None:
        self.conn, self.schema = conn, schema
        self.columns = {table: self._columns(table) for table in TABLES}

    def _columns(self, table: str) -> dict[str, str]:
        """Column -> type; a missing table or required column, or a column of a type Kontak cannot
        read its values from, stops the import here, before anything is written."""
        rows = self.conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = %s AND table_name = %s", (self.schema, table)).fetchall()
        present = dict(rows)
        missing = [c for c in REQUIRED[table] if c not in present]
        if not present:
            raise LegacyImportError(f"source has no table {self.schema}.{table}")
        if missing:
            raise LegacyImportError(f"source table {self.schema}.{table} lacks column(s) {', '.join(missing)}")
        for column, type_ in present.items():
            accepted = TYPED.get((table, column))
            if accepted is not None and type_ not in accepted:
                what = "UUIDs, the workspace_id callers send" if accepted is UUID_TYPES else "times"
                raise LegacyImportError(f"source column {self.schema}.{table}.{column} is {type_}: Kontak needs "
                                        f"{what} ({' or '.join(accepted)}); a view over the table that converts "
                                        "it, in a schema given as --source-schema, can be imported")
        return present

    def has(self, table: str, column: str) -> bool:
        return column in self.columns[table]

    def col(self, table: str, column: str, alias: str = "t") -> sql.Composable:
        """`alias.column`, or NULL when the source lacks that optional column; times as timestamptz
        (a timestamp without time zone, or a date, read as UTC: the source session's time zone)."""
        if not self.has(table, column):
            return sql.SQL("NULL")
        if self.columns[table][column] in TIME_TYPES:
            return sql.SQL("{}.{}::timestamptz").format(sql.Identifier(alias), sql.Identifier(column))
        return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column))

    def table(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name)

    def count(self, table: str) -> int:
        return self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self.table(table))).fetchone()[0]

    def rows(self, query: sql.Composable, table: str) -> Iterator[dict[str, Any]]:
        with self.conn.cursor(name=f"legacy_{id(query)}", row_factory=dict_row) as cur:
            cur.itersize = CHUNK
            try:
                cur.execute(query)
                yield from cur
            except psycopg.DataError as error:
                # A value PostgreSQL or Python cannot read (bytes that are not UTF-8 in a SQL_ASCII
                # database, a time past year 9999): name the table, not a traceback.
                raise LegacyImportError(f"source table {self.schema}.{table}: "
                                        f"{str(error).strip().splitlines()[0]}{_encoding_hint(self.conn)}") from None


def _encoding_hint(conn: psycopg.Connection) -> str:
    # From the session's parameters: after a server-side error the transaction answers no query.
    if conn.info.parameter_status("server_encoding") != "SQL_ASCII":
        return ""
    return (" (the source database is SQL_ASCII, which stores any bytes unchecked; Kontak reads its text as "
            "UTF-8, so text in another encoding must be converted in the source first)")


# --- contacts: normalise, merge ---------------------------------------------------------------------------------

@dataclass
class MergedContact:
    key: Key
    sources: list[dict[str, Any]]

    def _newest_first(self) -> list[dict[str, Any]]:
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(self.sources, key=lambda r: (r["updated_at"] or r["created_at"] or epoch, str(r["id"])),
                      reverse=True)

    def row(self) -> tuple:
        newest = self._newest_first()

        def first(name: str) -> Any:
            return next((r[name] for r in newest if r[name] not in (None, "")), None)

        tags: list[str] = []
        for record in newest:  # already lists of strings (read_contacts)
            tags += [t for t in record["tags"] if t not in tags]
        created = min(r["created_at"] for r in self.sources)
        updated = max([r["updated_at"] or r["created_at"] for r in self.sources])
        score = max(r["lead_score"] for r in self.sources)
        return (*self.key, first("name"), first("kapso_name"), first("email"), first("lead_status") or "new",
                score, tags, created, max(updated, created))


def _contact_query(src: Source) -> sql.Composable:
    """Contacts with created_at resolved (see the module rules)."""
    earliest = [src.col("contacts", "created_at", "c")]
    if src.has("contact_notes", "created_at"):
        earliest.append(sql.SQL("(SELECT min(n.created_at) FROM {} n WHERE n.contact_id = c.id)")
                        .format(src.table("contact_notes")))
    for column in ("created_at", "last_message_at"):
        if src.has("conversations", column):
            earliest.append(sql.SQL("(SELECT min(v.{}) FROM {} v WHERE v.contact_id = c.id)")
                            .format(sql.Identifier(column), src.table("conversations")))
    if src.has("messages", "created_at"):
        earliest.append(sql.SQL("(SELECT min(m.created_at) FROM {} m JOIN {} v ON v.id = m.conversation_id "
                                "WHERE v.contact_id = c.id)").format(src.table("messages"), src.table("conversations")))
    created = sql.SQL("COALESCE({}, LEAST({}))").format(
        earliest[0], sql.SQL(", ").join(earliest[1:] or [sql.SQL("NULL")]))
    fields = [sql.SQL("{} AS {}").format(src.col("contacts", name, "c"), sql.Identifier(name))
              for name in OPTIONAL["contacts"] if name != "created_at"]
    return sql.SQL("SELECT c.id::text AS id, c.workspace_id::text AS workspace_id, c.phone::text AS phone, {}, "
                   "{} AS created_at FROM {} c ORDER BY c.id").format(
        sql.SQL(", ").join(fields), created, src.table("contacts"))


def _read_values(record: dict[str, Any], report: ImportReport) -> None:
    """The contact's tags and lead_score as Kontak holds them (commands/legacy_values.py), what was lost listed."""
    record["tags"], tags_note = read_tags(record["tags"])
    record["lead_score"], score_note = read_score(record["lead_score"])
    for note in (tags_note, score_note):
        if note is not None:
            report.adjusted.append(f"contact {record['id']} (workspace {record['workspace_id']}): {note}")


def read_contacts(src: Source, region: str, workspaces: dict[str, datetime], report: ImportReport,
                  tick: Callable[[], None]) -> tuple[dict[str, Key], list[MergedContact]]:
    """Normalised and merged contacts; `by_source` maps each imported source contact id to its key."""
    groups: dict[Key, MergedContact] = {}
    by_source: dict[str, Key] = {}
    for record in src.rows(_contact_query(src), "contacts"):
        tick()
        report.read["contacts"] += 1
        raw = record["phone_normalized"] or record["phone"]
        try:
            phone = normalize_phone(str(raw or ""), region)
        except InvalidPhone:
            report.skipped["contacts"] += 1
            report.rejects.append(f"contact {record['id']} (workspace {record['workspace_id']}): "
                                  f"phone {mask_raw(raw)} does not normalise")
            continue
        workspace = canonical_uuid(record["workspace_id"])
        if workspace not in workspaces:
            report.skipped["contacts"] += 1
            report.rejects.append(f"contact {record['id']}: workspace {record['workspace_id']} not imported")
            continue
        record["workspace_id"] = workspace
        _read_values(record, report)
        record["created_at"] = record["created_at"] or workspaces[workspace]
        key = (workspace, phone)
        groups.setdefault(key, MergedContact(key, [])).sources.append(record)
        by_source[record["id"]] = key
    for group in groups.values():
        if len(group.sources) > 1:
            ids = ", ".join(r["id"] for r in group.sources)
            report.merged_contacts.append(f"workspace {group.key[0]}: {mask_phone(group.key[1])} <- "
                                          f"{len(group.sources)} source contacts ({ids})")
    return by_source, list(groups.values())


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
    report = ImportReport(describe_source(source_dsn))
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
