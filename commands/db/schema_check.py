"""`flask --app app db check`: does a database fit docs/contract.md §2, and if not, what exactly is missing.

Everything is read from the catalogue (no DDL, nothing written). Indexes and
unique constraints are recognised by their columns, not their names, so a
project that built them under other names still fits; a unique constraint
is satisfied by a unique index on the same columns (what ON CONFLICT needs).
The values the lookups match on are checked too, in one scan of contacts:
phones in E.164 by contract/formats.json, BSUIDs by contract/webhook_rules.json, and every contact
holding a phone or a BSUID (docs/contract.md §2, §4a); examples are masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from services.contract import formats, rules
from services.identity import mask_bsuid
from services.phones import mask_raw_phone
from services.postgres import migrations

TIMESTAMP = ("timestamp with time zone", "timestamp(3) with time zone")
# table -> column -> (accepted types, NOT NULL)
COLUMNS: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "workspaces": {"id": (("uuid",), True), "name": (("text",), True), "kapso_phone_id": (("text",), False),
                   "created_at": (TIMESTAMP, True)},
    # phone is nullable since migration 0005: a contact may be known by its BSUID alone (docs/contract.md §4a).
    "contacts": {"id": (("uuid",), True), "workspace_id": (("uuid",), True), "phone": (("text",), False),
                 "bsuid": (("text",), False), "parent_bsuid": (("text",), False), "username": (("text",), False),
                 "name": (("text",), False), "kapso_name": (("text",), False), "email": (("text",), False),
                 "lead_status": (("text",), True), "lead_score": (("integer",), True), "tags": (("text[]",), True),
                 "created_at": (TIMESTAMP, True), "updated_at": (TIMESTAMP, True)},
    "conversations": {"id": (("uuid",), True), "workspace_id": (("uuid",), True), "contact_id": (("uuid",), True),
                      "status": (("text",), True), "unread_count": (("integer",), True),
                      "last_message_at": (TIMESTAMP, False), "last_message_preview": (("text",), False),
                      "created_at": (TIMESTAMP, True), "status_at": (TIMESTAMP, False)},
    "messages": {"id": (("bigint", "uuid"), True), "workspace_id": (("uuid",), True),
                 "conversation_id": (("uuid",), True), "direction": (("text",), True), "content": (("text",), False),
                 "message_type": (("text",), True), "kapso_message_id": (("text",), False),
                 "status": (("text",), False), "created_at": (TIMESTAMP, True), "legacy_id": (("text",), False),
                 "error_code": (("text",), False), "error_title": (("text",), False)},
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
# (table, columns, predicate): a predicate names the partial index that also fits; a plain unique index on
# the same columns fits too (NULLs are distinct, so it is unique "where present" as well).
UNIQUE: list[tuple[str, tuple[str, ...], str | None]] = [
    ("workspaces", ("kapso_phone_id",), None), ("contacts", ("workspace_id", "phone"), None),
    ("contacts", ("workspace_id", "bsuid"), "bsuid IS NOT NULL"),
    ("conversations", ("contact_id",), None), ("messages", ("workspace_id", "kapso_message_id"), None),
    ("messages", ("workspace_id", "legacy_id"), None), ("contact_notes", ("workspace_id", "legacy_id"), None),
    ("api_keys", ("key_hash",), None)]
# Identifiers unique only where present: NULLS NOT DISTINCT would let one workspace hold a single contact
# without a phone (or without a BSUID).
WHERE_PRESENT = {("contacts", "workspace_id, phone"), ("contacts", "workspace_id, bsuid")}
FOREIGN_KEYS = [("contacts", "workspace_id", "workspaces"), ("conversations", "workspace_id", "workspaces"),
                ("conversations", "contact_id", "contacts"), ("messages", "workspace_id", "workspaces"),
                ("messages", "conversation_id", "conversations"), ("contact_notes", "workspace_id", "workspaces"),
                ("contact_notes", "contact_id", "contacts"), ("api_keys", "workspace_id", "workspaces")]
CHECKS = [("contacts", "lead_score"), ("messages", "direction")]
# (table, what, the parts its definition must hold): checks recognised by their expression, not a column.
CHECK_EXPRESSIONS = [("contacts", "a phone or a BSUID", ("phone IS NOT NULL", " OR ", "bsuid IS NOT NULL"))]
# The lookup's "newest first" reads (docs/contract.md §3).
INDEXES = [("contact_notes", "contact_id, created_at DESC, id DESC"),
           ("messages", "conversation_id, created_at DESC, id DESC")]
# What the phone rule stores (docs/contract.md §4), the pattern the Convex functions check too.
E164 = formats().e164


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


@dataclass(frozen=True)
class Index:
    table: str
    columns: str  # "col, col DESC", as pg_get_indexdef writes them
    unique: bool
    primary: bool
    valid: bool
    where: str | None  # a partial index's predicate, outer parentheses removed
    nulls_distinct: bool


def _key_columns(definition: str) -> str:
    """The text inside the parentheses after USING, up to the one that closes them (a WHERE follows)."""
    start = definition.index("(", definition.index(" USING ")) + 1
    depth = 1
    for position in range(start, len(definition)):
        depth += {"(": 1, ")": -1}.get(definition[position], 0)
        if depth == 0:
            return definition[start:position]
    return definition[start:]


def _predicate(expression: str | None) -> str | None:
    while expression and expression.startswith("(") and expression.endswith(")"):
        expression = expression[1:-1]
    return expression


def _indexes(conn: psycopg.Connection, schema: str) -> list[Index]:
    """Every index of `schema`, partial ones with their predicate."""
    rows = conn.execute(
        """SELECT t.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary, i.indisvalid,
                  pg_get_expr(i.indpred, i.indrelid)
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
           WHERE n.nspname = %s""", (schema,)).fetchall()
    # pg_get_indexdef ends with "NULLS NOT DISTINCT" for such an index (PostgreSQL 15+); older servers have none.
    return [Index(table, _key_columns(definition), unique, primary, valid, _predicate(where),
                  " NULLS NOT DISTINCT" not in definition)
            for table, definition, unique, primary, valid, where in rows]


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


def _check_keys(report: Report, tables: set[str], indexes: list[Index]) -> None:
    for index in indexes:
        if not index.valid and index.table in COLUMNS:
            report.problems.append(f"invalid index on {index.table} ({index.columns}): an interrupted build; "
                                   "run db upgrade")
    for table in PRIMARY_KEYS:
        if table in tables:
            report.check(any(i.table == table and i.primary for i in indexes),
                         f"primary key {table}(id)", f"missing primary key {table}(id)")
    for table, columns, where in UNIQUE:
        if table in tables:
            _check_unique(report, table, ", ".join(columns), where, indexes)
    for table, wanted in INDEXES:
        if table in tables:
            report.check(any(i.table == table and i.columns == wanted and i.valid and i.where is None
                             for i in indexes),
                         f"index {table}({wanted})", f"missing index {table}({wanted})")


def _check_unique(report: Report, table: str, wanted: str, where: str | None, indexes: list[Index]) -> None:
    label = f"{table}({wanted})" + (f" where {where}" if where else "")
    fitting = [i for i in indexes if i.table == table and i.columns == wanted and i.unique and i.valid
               and i.where in (None, where)]
    if not report.check(bool(fitting), f"unique {label}", f"missing unique constraint {label}"):
        return
    if (table, wanted) in WHERE_PRESENT and not any(i.nulls_distinct for i in fitting):
        column = wanted.rsplit(", ", 1)[-1]
        report.problems.append(f"unique {table}({wanted}) is NULLS NOT DISTINCT: it must hold only where "
                               f"{column} is present (a workspace may have many contacts without one)")


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
    for table, what, parts in CHECK_EXPRESSIONS:
        if table not in tables:
            continue
        found = [d for t, k, d in constraints if t == table and k == "c" and all(p in d for p in parts)]
        if report.check(bool(found), f"check on {table}: {what}", f"missing check constraint on {table}: {what}"):
            # NOT VALID: enforced for new rows, unproven for the rows before it (migration 0006 validates).
            report.check(any(not d.endswith(" NOT VALID") for d in found), f"check on {table}: {what} validated",
                         f"check on {table}: {what} is NOT VALID (rows before it unproven): run db upgrade")


@dataclass(frozen=True)
class ValueRule:
    columns: tuple[str, ...]  # what the rule reads; an example shows the first
    wrong: str  # the condition a wrong value meets (NULL never does)
    good: str
    bad: str
    hint: str | None  # None: no examples (the value is absent, nothing to show)


# Values are read as text (`::text`): a column of another type (a legacy `phone bigint`) is
# reported as a wrong type above and still has its values judged here, instead of the query failing.
VALUE_RULES = [
    ValueRule(("phone",), "phone::text !~ %(e164)s", "every contacts.phone is E.164", "contacts.phone not in E.164",
              "db import-legacy normalises"),
    ValueRule(("bsuid",), "bsuid::text !~ %(bsuid)s", "every contacts.bsuid is a BSUID", "contacts.bsuid not a BSUID",
              "two upper-case letters, a dot, 1-128 letters or digits"),
    ValueRule(("parent_bsuid",), "parent_bsuid::text !~ %(parent)s", "every contacts.parent_bsuid is a parent BSUID",
              "contacts.parent_bsuid not a parent BSUID", "two upper-case letters, .ENT., 1-128 letters or digits"),
    ValueRule(("phone", "bsuid"), "phone IS NULL AND bsuid IS NULL", "every contact has a phone or a BSUID",
              "contacts with neither a phone nor a BSUID (no lookup can find them)", None),
]


def _mask_value(rule: ValueRule, value: str) -> str:
    return mask_raw_phone(value) if rule.columns[0] == "phone" else mask_bsuid(value)


def _check_values(report: Report, conn: psycopg.Connection, schema: str, tables: dict) -> None:
    """The identifiers the lookups match on, in one scan of contacts; examples masked, never in full."""
    columns = tables.get("contacts", {})
    value_rules = [r for r in VALUE_RULES if all(c in columns for c in r.columns)]
    if not value_rules:
        return
    # The patterns of contract/webhook_rules.json: db check and both webhooks judge a BSUID alike.
    params = {"e164": E164, "bsuid": rules().bsuid_pattern, "parent": rules().parent_bsuid_pattern}
    filters = ", ".join(f"count(*) FILTER (WHERE {r.wrong})" for r in value_rules)
    counts = conn.execute(f'SELECT {filters} FROM "{schema}".contacts', params).fetchone()
    for rule, bad in zip(value_rules, counts, strict=True):
        if report.check(bad == 0, rule.good, f"{bad:,} {rule.bad}") or rule.hint is None:
            continue
        examples = conn.execute(f'SELECT {rule.columns[0]}::text FROM "{schema}".contacts WHERE {rule.wrong} LIMIT 3',
                                params).fetchall()
        masked = ", ".join(_mask_value(rule, value) for (value,) in examples)
        report.problems[-1] += f" (e.g. {masked}; {rule.hint})"


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
    _check_values(report, conn, schema, tables)
    _check_migrations(report, conn, schema)
    return report
