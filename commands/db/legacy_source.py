"""db import-legacy, its reading side: the original CRM's tables in one read-only snapshot, checked
before anything is written, and its contacts normalised and merged (the rules are legacy_import.py's).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from commands.db.legacy_values import read_score, read_tags
from services.phones import InvalidPhone, mask_phone, mask_raw_phone, normalize_phone

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
    """The contact's tags and lead_score as Kontak holds them (legacy_values.py), what was lost listed."""
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
                                  f"phone {mask_raw_phone(raw)} does not normalise")
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
