"""The outbox of change capture (migrations/0008_change_capture.sql, docs/contract.md §14), read:
whether capture is on, and how much waits. The follower's commands switch it (commands/sync/capture.py);
/metrics reads it here at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# Each captured table and the function its row trigger runs (migrations/0008_change_capture.sql).
CAPTURED = {
    "workspaces": "kontak_capture_workspace",
    "contacts": "kontak_capture_contact",
    "contact_notes": "kontak_capture_contact_child",
    "conversations": "kontak_capture_contact_child",
    "messages": "kontak_capture_message",
    "api_keys": "kontak_capture_key",
}
ROW_TRIGGER, TRUNCATE_TRIGGER = "kontak_capture", "kontak_capture_truncate"


def capture_state(conn: psycopg.Connection) -> str:
    """"on" (every trigger there), "off" (none) or "partial"."""
    found = conn.execute(
        """SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
             AND c.relname = ANY(%s) AND t.tgname IN (%s, %s) AND t.tgenabled <> 'D'""",
        (list(CAPTURED), ROW_TRIGGER, TRUNCATE_TRIGGER)).fetchone()[0]
    return "on" if found == 2 * len(CAPTURED) else "off" if found == 0 else "partial"


@dataclass(frozen=True)
class Backlog:
    changes: int  # outbox rows not yet applied
    lag_ms: int  # age of the oldest of them (0 when none)


def backlog(conn: psycopg.Connection) -> Backlog:
    changes, oldest = conn.execute(
        """SELECT count(*), coalesce((extract(epoch FROM clock_timestamp() - min(changed_at)) * 1000)::bigint, 0)
           FROM kontak_changes""").fetchone()
    return Backlog(changes, max(0, oldest))
