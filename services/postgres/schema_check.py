"""`flask --app app db check`: does a database fit docs/contract.md §2, and if not, what exactly is missing.

Everything is read from the catalogue (no DDL, nothing written). Indexes and
unique constraints are recognised by their columns, not their names, so a
project that built them under other names still fits; a unique constraint
is satisfied by a unique index on the same columns (what ON CONFLICT needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from services.phones import mask_phone
from services.postgres import migrations

TIMESTAMP = ("timestamp with time zone", "timestamp(3) with time zone")
# table -> column -> (accepted types, NOT NULL)
COLUMNS: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "workspaces": {"id": (("uuid",), True), "name": (("text",), True), "kapso_phone_id": (("text",), False),
                   "created_at": (TIMESTAMP, True)},
    "contacts": {"id": (("uuid",), True), "workspace_id": (("uuid",), True), "phone": (("text",), True),
                 "name": (("text",), False), "kapso_name": (("text",), False), "email": (("text",), False),
                 "lead_status": (("text",), True), "lead_score": (("integer",), True), "tags": (("text[]",), True),
                 "created_at": (TIMESTAMP, True), "updated_at": (TIMESTAMP, True)},
    "conversations": {"id": (("uuid",), True), "workspace_id": (("uuid",), True), "contact_id": (("uuid",), True),
                      "status": (("text",), True), "unread_count": (("integer",), True),
                      "last_message_at": (TIMESTAMP, False), "last_message_preview": (("text",), False),
                      "created_at": (TIMESTAMP, True)},
    "messages": {"id": (("bigint", "uuid"), True), "workspace_id": (("uuid",), True),
                 "conversation_id": (("uuid",), True), "direction": (("text",), True), "content": (("text",), False),
                 "message_type": (("text",), True), "kapso_message_id": (("text",), False),
                 "status": (("text",), False), "created_at": (TIMESTAMP, True), "legacy_id": (("text",), False)},
    "contact_notes": {"id": (("bigint", "uuid"), True), "workspace_id": (("uuid",), True),
                      "contact_id": (("uuid",), True), "content": (("text",), True), "created_at": (TIMESTAMP, True),
                      "legacy_id": (("text",), False)},
    # Keys per workspace (docs/contract.md §13, migration 0004).
    "api_keys": {"id": (("uuid",), True), "workspace_id": (("uuid",), True), "name": (("text",), True),
                 "key_hash": (("text",), True), "prefix": (("text",), True), "created_at": (TIMESTAMP, True),
                 "last_used_at": (TIMESTAMP, False), "revoked_at": (TIMESTAMP, False)},
}
# Columns whose absence means "database generates it": a default is required.
DEFAULTS = {("workspaces", "id"), ("contacts", "id"), ("conversations", "id"), ("messages", "id"),
            ("contact_notes", "id"), ("workspaces", "created_at"), ("contacts", "created_at"),
            ("conversations", "created_at"), ("messages", "created_at"), ("contact_notes", "created_at"),
            ("contacts", "lead_status"), ("contacts", "lead_score"), ("contacts", "tags"),
            ("api_keys", "id"), ("api_keys", "created_at")}
PRIMARY_KEYS = {table: ("id",) for table in COLUMNS}
UNIQUE = [("workspaces", ("kapso_phone_id",)), ("contacts", ("workspace_id", "phone")),
          ("conversations", ("contact_id",)), ("messages", ("workspace_id", "kapso_message_id")),
          ("messages", ("workspace_id", "legacy_id")), ("contact_notes", ("workspace_id", "legacy_id")),
          ("api_keys", ("key_hash",))]
FOREIGN_KEYS = [("contacts", "workspace_id", "workspaces"), ("conversations", "workspace_id", "workspaces"),
                ("conversations", "contact_id", "contacts"), ("messages", "workspace_id", "workspaces"),
                ("messages", "conversation_id", "conversations"), ("contact_notes", "workspace_id", "workspaces"),
                ("contact_notes", "contact_id", "contacts"), ("api_keys", "workspace_id", "workspaces")]
CHECKS = [("contacts", "lead_score"), ("messages", "direction")]
# The lookup's "newest first" reads (docs/contract.md §3).
INDEXES = [("contact_notes", "contact_id, created_at DESC, id DESC"),
           ("messages", "conversation_id, created_at DESC, id DESC")]
E164 = r"^\+[1-9][0-9]{6,14}$"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    fits: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, condition: bool, good: str, bad: str) -> bool:
        (self.fits if condition else self.problems).append(good if condition else bad)
        return condition


def _columns(conn: psycopg.Connection, schema: str) -> dict[str, dict[str, tuple[str, bool, bool]]]:
    rows = conn.execute(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  a.atthasdef OR a.attidentity <> ''
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped""",
        (schema,)).fetchall()
    tables: dict[str, dict[str, tuple[str, bool, bool]]] = {}
    for table, column, type_, not_null, has_default in rows:
        tables.setdefault(table, {})[column] = (type_, not_null, has_default)
    return tables


def _indexes(conn: psycopg.Connection, schema: str) -> list[tuple[str, str, bool, bool, bool]]:
    """(table, "col, col DESC", unique, primary, valid) of every plain (non-partial) index."""
    rows = conn.execute(
        """SELECT t.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary, i.indisvalid
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
           WHERE n.nspname = %s AND i.indpred IS NULL""", (schema,)).fetchall()
    found = []
    for table, definition, unique, primary, valid in rows:
        columns = definition[definition.index("(", definition.index(" USING ")) + 1:definition.rindex(")")]
        found.append((table, columns, unique, primary, valid))
    return found


def _constraints(conn: psycopg.Connection, schema: str) -> list[tuple[str, str, str]]:
    """(table, kind, definition) of foreign keys and checks."""
    return conn.execute(
        """SELECT t.relname, c.contype, pg_get_constraintdef(c.oid)
           FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
           WHERE n.nspname = %s AND c.contype IN ('f', 'c')""", (schema,)).fetchall()


def _check_columns(report: Report, tables: dict[str, dict[str, tuple[str, bool, bool]]]) -> None:
    for table, columns in COLUMNS.items():
        if not report.check(table in tables, f"table {table}", f"missing table {table}"):
            continue
        for column, (types, not_null) in columns.items():
            where = f"{table}.{column}"
            if column not in tables[table]:
                report.problems.append(f"missing column {where} ({types[0]})")
                continue
            type_, is_not_null, has_default = tables[table][column]
            if type_ not in types:
                report.problems.append(f"wrong type {where}: {type_}, expected {' or '.join(types)}")
            if not_null and not is_not_null:
                report.problems.append(f"missing NOT NULL on {where}")
            if (table, column) in DEFAULTS and not has_default:
                report.problems.append(f"missing default on {where} (the database generates it)")


def _check_keys(report: Report, tables: set[str], indexes: list[tuple[str, str, bool, bool, bool]]) -> None:
    for table, columns, _unique, _primary, valid in indexes:
        if not valid and table in COLUMNS:
            report.problems.append(f"invalid index on {table} ({columns}): an interrupted build; run db upgrade")
    for table in PRIMARY_KEYS:
        if table in tables:
            report.check(any(t == table and p for t, _c, _u, p, _v in indexes),
                         f"primary key {table}(id)", f"missing primary key {table}(id)")
    for table, columns in UNIQUE:
        wanted = ", ".join(columns)
        if table in tables:
            report.check(any(t == table and c == wanted and u and v for t, c, u, _p, v in indexes),
                         f"unique {table}({wanted})", f"missing unique constraint {table}({wanted})")
    for table, wanted in INDEXES:
        if table in tables:
            report.check(any(t == table and c == wanted and v for t, c, _u, _p, v in indexes),
                         f"index {table}({wanted})", f"missing index {table}({wanted})")


def _unqualified(definition: str, schema: str) -> str:
    return definition.replace(f"REFERENCES {schema}.", "REFERENCES ")


def _check_constraints(report: Report, tables: set[str], constraints: list[tuple[str, str, str]],
                       schema: str) -> None:
    for table, column, target in FOREIGN_KEYS:
        if table in tables:
            prefix = f"FOREIGN KEY ({column}) REFERENCES {target}(id)"
            report.check(any(t == table and k == "f" and _unqualified(d, schema).startswith(prefix)
                             for t, k, d in constraints),
                         f"foreign key {table}.{column} -> {target}",
                         f"missing foreign key {table}.{column} -> {target}(id)")
    for table, column in CHECKS:
        if table in tables:
            report.check(any(t == table and k == "c" and column in d for t, k, d in constraints),
                         f"check on {table}.{column}", f"missing check constraint on {table}.{column}")


def _check_phones(report: Report, conn: psycopg.Connection, schema: str, tables: dict) -> None:
    if "phone" not in tables.get("contacts", {}):
        return
    bad = conn.execute(f'SELECT count(*) FROM "{schema}".contacts WHERE phone !~ %s', (E164,)).fetchone()[0]
    if report.check(bad == 0, "every contacts.phone is E.164", f"{bad:,} contacts.phone not in E.164"):
        return
    examples = conn.execute(f'SELECT phone FROM "{schema}".contacts WHERE phone !~ %s LIMIT 3', (E164,)).fetchall()
    report.problems[-1] += f" (e.g. {', '.join(_mask_raw(p) for (p,) in examples)}; db import-legacy normalises)"


def _mask_raw(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return mask_phone("+" + digits) if len(digits) > 6 else "****"


def _check_migrations(report: Report, conn: psycopg.Connection, schema: str) -> None:
    behind = migrations.pending(conn, schema)
    labels = ", ".join(m.label for m in behind)
    report.check(not behind, f"migrations at {migrations.latest_version():04d}",
                 f"{len(behind)} pending migration(s): {labels} (flask --app app db upgrade)")


def check(conn: psycopg.Connection, schema: str) -> Report:
    """Everything docs/contract.md §2 asks of `schema`, read from the catalogue."""
    report = Report()
    tables = _columns(conn, schema)
    _check_columns(report, tables)
    _check_keys(report, set(tables), _indexes(conn, schema))
    _check_constraints(report, set(tables), _constraints(conn, schema), schema)
    _check_phones(report, conn, schema, tables)
    _check_migrations(report, conn, schema)
    return report
