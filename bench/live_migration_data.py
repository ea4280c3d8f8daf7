"""bench/migration_live.py's database: Kontak's schema at the last migration before the identity
migrations (0005, 0006), holding the synthetic contacts in the columns of that schema, and the lookup the
service ran against it; counts and content fingerprints of every table, to compare before and after."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from commands.compare import synthetic
from services.postgres import migrations
from services.postgres.store import CONTEXT_COLUMNS

SEED = synthetic.DEFAULT_SEED
DATABASE = "kontak_live"
LAST_BEFORE_IDENTITY = 4  # migrations/0004_api_keys.sql; 0005 and 0006 add the identity columns, later ones follow
TABLES = ("workspaces", "contacts", "contact_notes", "conversations", "messages", "api_keys")
# What identifies a row's content, per table: summed hashes (order-free), compared before and after.
FINGERPRINTS = {
    "contacts": "id::text || workspace_id::text || phone || coalesce(name, '') || lead_status || lead_score::text",
    "contact_notes": "id::text || contact_id::text || content",
    "conversations": "id::text || contact_id::text || status",
    "messages": "id::text || conversation_id::text || coalesce(content, '') || direction",
}

# The lookup the service ran before the identity migrations (by phone only, no username): the statement
# a live service keeps sending while the upgrade runs (the new code answers only once the schema is
# current; services/postgres/pool.py refuses while a migration is pending).
PRE_IDENTITY_LOOKUP_SQL = f"""
SELECT c.name, c.kapso_name, c.lead_status, c.lead_score, c.tags, c.created_at,
       {CONTEXT_COLUMNS}
FROM contacts c
LEFT JOIN conversations cv ON cv.contact_id = c.id
WHERE c.workspace_id = %s AND c.phone = %s
"""


def log(message: str) -> None:
    print(f"[migration-live {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


@contextmanager
def migrations_up_to(version: int):
    """The real runner, shown only the files up to `version` (migrations.pending reads `available()`)."""
    real = migrations.available

    def limited(directory: Path = migrations.MIGRATIONS_DIR) -> list[migrations.Migration]:
        return [m for m in real(directory) if m.version <= version]

    migrations.available = limited
    try:
        yield
    finally:
        migrations.available = real


def _phoned_contacts(first: int, step: int) -> Iterator[dict[str, Any]]:
    """Synthetic contacts first, first + step, ... that have a phone: before 0005 every contact has one,
    so the seed's username-only contacts (no phone) are skipped and later indexes take their place."""
    ids = synthetic.workspace_ids(SEED)
    for index in itertools.count(first, step):
        record = synthetic.contact(SEED, index, ids)
        if record.get("phone"):
            yield record


def _copy_share(url: str, process: int, processes: int, share: int, chunk: int = 5000) -> int:
    """COPY `share` synthetic contacts (indexes process, process + processes, ...: disjoint between the
    processes) in the columns of the schema at 0004, `chunk` contacts per transaction."""
    loaded = 0
    records = _phoned_contacts(process, processes)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        while loaded < share:
            rows: dict[str, list[tuple]] = {"contacts": [], "notes": [], "conversations": [], "messages": []}
            for record in itertools.islice(records, min(chunk, share - loaded)):
                phone = record["phone"]
                contact_id, ws = uuid.uuid4(), record["workspace_id"]
                rows["contacts"].append((contact_id, ws, phone, record.get("name"), record.get("kapso_name"),
                                         record.get("email"), record.get("lead_status", "new"),
                                         record.get("lead_score", 0), record.get("tags", []),
                                         record["created_at"], record.get("updated_at") or record["created_at"]))
                rows["notes"] += [(ws, contact_id, n["content"], n["created_at"]) for n in record.get("notes", [])]
                conv = record.get("conversation")
                if conv is not None:
                    conv_id = uuid.uuid4()
                    rows["conversations"].append((conv_id, ws, contact_id, conv.get("status", "open"),
                                                  conv.get("unread_count", 0), conv.get("last_message_at"),
                                                  conv.get("last_message_preview"), conv["created_at"]))
                    rows["messages"] += [(ws, conv_id, m["direction"], m.get("content"),
                                          m.get("message_type", "text"), m.get("kapso_message_id"),
                                          m.get("status"), m["created_at"]) for m in conv["messages"]]
            plan = [
                ("contacts (id, workspace_id, phone, name, kapso_name, email, lead_status, lead_score, tags, "
                 "created_at, updated_at)", rows["contacts"]),
                ("contact_notes (workspace_id, contact_id, content, created_at)", rows["notes"]),
                ("conversations (id, workspace_id, contact_id, status, unread_count, last_message_at, "
                 "last_message_preview, created_at)", rows["conversations"]),
                ("messages (workspace_id, conversation_id, direction, content, message_type, kapso_message_id, "
                 "status, created_at)", rows["messages"]),
            ]
            with conn.transaction(), conn.cursor() as cur:
                for target, values in plan:
                    with cur.copy(f"COPY {target} FROM STDIN") as copy:
                        for row in values:
                            copy.write_row(row)
            loaded += len(rows["contacts"])
    return loaded


def build_pre_identity_database(admin_url: str, url: str, contacts: int, processes: int) -> dict[str, Any]:
    """Database DATABASE at migration 0004 holding `contacts` synthetic contacts, settled (VACUUM ANALYZE)."""
    started = time.perf_counter()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(url, autocommit=True) as conn, migrations_up_to(LAST_BEFORE_IDENTITY):
        applied = [m.label for m in migrations.upgrade(conn)]
    assert max(int(label[:4]) for label in applied) == LAST_BEFORE_IDENTITY, applied
    with psycopg.connect(url, autocommit=True) as conn:
        for ws in synthetic.workspaces(SEED):
            conn.execute("INSERT INTO workspaces (id, name, kapso_phone_id, created_at) VALUES (%s, %s, %s, %s)",
                         (ws["id"], ws["name"], ws["kapso_phone_id"], ws["created_at"]))
    shares = [contacts * (i + 1) // processes - contacts * i // processes for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        loaded = sum(pool.map(_copy_share, [url] * processes, range(processes), [processes] * processes, shares))
    assert loaded == contacts, (loaded, contacts)
    load_s = time.perf_counter() - started
    log(f"loaded {loaded:,} contacts in {load_s:.0f} s; VACUUM ANALYZE")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    return {"migrations_applied": applied, "contacts_loaded": loaded, "load_seconds": round(load_s, 1),
            "load_and_vacuum_seconds": round(time.perf_counter() - started, 1)}


def table_state(url: str) -> dict[str, dict[str, Any]]:
    """Row count of every table, and an order-free content fingerprint of the big ones."""
    state = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            expression = FINGERPRINTS.get(table)
            if expression is None:
                count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                state[table] = {"rows": count}
            else:
                count, fingerprint = conn.execute(
                    f"SELECT count(*), coalesce(sum(hashtextextended({expression}, 0)), 0)::text FROM {table}"
                ).fetchone()
                state[table] = {"rows": count, "fingerprint": fingerprint}
    return state
