"""Change capture in PostgreSQL for `sync-convex --follow` (docs/contract.md §14).

Migration 0008 adds the outbox and the trigger functions; the triggers themselves are
created here by the first follower run and dropped by `--capture off`, because capture costs
every writer one outbox row per changed row and an outbox nobody drains grows for ever.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from commands.connection import first_line
from services.postgres.outbox import CAPTURED, ROW_TRIGGER, TRUNCATE_TRIGGER, backlog, capture_state

__all__ = ["CAPTURED", "ROW_TRIGGER", "TRUNCATE_TRIGGER", "CaptureRefused", "backlog", "capture_off", "capture_on",
           "capture_state", "status"]

# CREATE/DROP TRIGGER briefly takes a lock writers wait behind: wait at most this, then try again.
LOCK_TIMEOUT, ATTEMPTS = "800ms", 5


class CaptureRefused(Exception):
    """The database will not let this role switch capture on or off: one line says why."""


def _triggers(table: str, function: str) -> list[sql.Composed]:
    return [
        sql.SQL("CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()")
        .format(sql.Identifier(ROW_TRIGGER), sql.Identifier(table), sql.Identifier(function)),
        sql.SQL("CREATE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION kontak_capture_truncate()")
        .format(sql.Identifier(TRUNCATE_TRIGGER), sql.Identifier(table)),
    ]


def _change_triggers(conn: psycopg.Connection, statements: list[sql.Composed], doing: str) -> None:
    for attempt in range(ATTEMPTS):
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                for statement in statements:
                    conn.execute(statement)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == ATTEMPTS - 1:
                raise CaptureRefused(f"cannot {doing}: the tables stayed busy ({ATTEMPTS} tries)") from None
            time.sleep(0.5)
        except psycopg.errors.InsufficientPrivilege as error:
            raise CaptureRefused(f"cannot {doing}: {first_line(error)} (the role must own Kontak's tables, "
                                 "as Supabase's postgres role does)") from None


def capture_on(conn: psycopg.Connection) -> bool:
    """Create the triggers that are missing; True when any was."""
    if capture_state(conn) == "on":
        return False
    drops = _drops()
    creates = [s for table, function in CAPTURED.items() for s in _triggers(table, function)]
    _change_triggers(conn, drops + creates, "switch change capture on")
    return True


def capture_off(conn: psycopg.Connection) -> int:
    """Drop the triggers and empty the outbox; how many changes were waiting."""
    _change_triggers(conn, _drops(), "switch change capture off")
    with conn.transaction():
        waiting = conn.execute("SELECT count(*) FROM kontak_changes").fetchone()[0]
        conn.execute("TRUNCATE kontak_changes")
        conn.execute("UPDATE kontak_follower SET epoch = NULL, backfilled = false, backfill_after = NULL")
    return waiting


def _drops() -> list[sql.Composed]:
    return [sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name), sql.Identifier(table))
            for table in CAPTURED for name in (ROW_TRIGGER, TRUNCATE_TRIGGER)]


# How `--status` judges a follower: seen within this long, and this far behind at most.
STALE_AFTER_S, READY_LAG_MS = 15, 5000


def status(conn: psycopg.Connection) -> dict[str, Any]:
    """The follower's health as `/readyz`-style JSON (docs/own-data.md §6)."""
    pending = backlog(conn)
    row = conn.execute(
        """SELECT destination, epoch, backfilled, applied, refused,
                  (extract(epoch FROM clock_timestamp() - cycle_at) * 1000)::bigint
           FROM kontak_follower""").fetchone()
    destination, epoch, backfilled, applied, refused, seen_ms = row or (None, None, False, 0, 0, None)
    state = capture_state(conn)
    ready = (state == "on" and backfilled and seen_ms is not None and seen_ms <= STALE_AFTER_S * 1000
             and pending.lag_ms <= READY_LAG_MS)
    return {"status": "ready" if ready else "not ready", "capture": state, "backlog": pending.changes,
            "lag_ms": pending.lag_ms, "destination": destination, "epoch": epoch, "backfilled": backfilled,
            "last_cycle_ms_ago": seen_ms, "applied": applied, "refused": refused}
