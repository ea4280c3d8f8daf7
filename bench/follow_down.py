"""`python -m bench.follow --down SECONDS` (bench/follow.py): a follower stopped for SECONDS of mixed
writes, then started while they go on: its catch-up, and the outbox trimmed to empty."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.follow_stack import CONTACTS, Stack, follow_stack, log, outbox_rows, status, wait_caught_up
from bench.measure import API_KEY
from services.convex.admin import ConvexAdmin

DOWN_RATE = 50  # changes/s while the follower is down


class MixedWriter(threading.Thread):
    """Paced writes: contact updates (half), new contacts, notes and messages (a sixth each)."""

    def __init__(self, url: str, rate: int, seed: int = 2) -> None:
        super().__init__(daemon=True)
        self.url, self.rate, self.random = url, rate, random.Random(seed)
        self.stop = threading.Event()
        self.operations: dict[str, int] = {}
        self.behind_max = 0.0
        self.errors: list[str] = []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            contacts = [(str(i), str(w)) for i, w in conn.execute("SELECT id, workspace_id FROM contacts")]
            conversations = [str(row[0]) for row in conn.execute("SELECT id FROM conversations")]
            workspaces = [str(row[0]) for row in conn.execute("SELECT id FROM workspaces")]
            started = time.perf_counter()
            for i in itertools.count():
                if self.stop.is_set():
                    return
                due = started + i / self.rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                else:
                    self.behind_max = max(self.behind_max, now - due)
                try:
                    self._write(conn, i, contacts, conversations, workspaces)
                except psycopg.Error as error:
                    self.errors.append(f"{type(error).__name__}: {error}")
                    if len(self.errors) > 20:
                        return

    def _write(self, conn: psycopg.Connection, i: int, contacts: list[tuple[str, str]], conversations: list[str],
               workspaces: list[str]) -> None:
        kind = self.random.choice(["update", "update", "update", "insert", "note", "message"])
        if kind == "update":
            conn.execute("UPDATE contacts SET name = %s, lead_score = %s, updated_at = now() WHERE id = %s",
                         (f"down-{i}", self.random.randrange(101), self.random.choice(contacts)[0]))
        elif kind == "insert":
            workspace = self.random.choice(workspaces)
            row = conn.execute("INSERT INTO contacts (workspace_id, phone, name, tags) VALUES (%s, %s, %s, %s) "
                               "RETURNING id", (workspace, f"+62898{i:08d}", f"Baru {i}", ["down"])).fetchone()
            contacts.append((str(row[0]), workspace))
        elif kind == "note":
            contact_id, workspace = self.random.choice(contacts)
            conn.execute("INSERT INTO contact_notes (workspace_id, contact_id, content) VALUES (%s, %s, %s)",
                         (workspace, contact_id, f"catatan {i}"))
        else:
            conn.execute("""INSERT INTO messages (workspace_id, conversation_id, direction, content, kapso_message_id)
                            SELECT workspace_id, id, 'outbound', %s, %s FROM conversations WHERE id = %s""",
                         (f"Balasan {i}", f"wamid.down-{i}", self.random.choice(conversations)))
        self.operations[kind] = self.operations.get(kind, 0) + 1


def measure_down(admin_url: str, tmp: Path, down_s: float, rate: int = DOWN_RATE,
                 contacts: int = CONTACTS) -> dict[str, Any]:
    """The follower stopped (SIGTERM) for `down_s` of writes at `rate`/s, then started while the writes go on:
    how long until it is caught up (outbox lag ≤ 1 s), then the writes stopped: until the outbox is empty."""
    with follow_stack(admin_url, tmp, contacts, serve=False) as stack:
        code = stack.follower.stop()
        log(f"follower stopped (exit {code}); writing {rate} changes/s for {down_s:.0f} s")
        writer = MixedWriter(stack.url, rate)
        writer.start()
        stopped_at = time.perf_counter()
        while time.perf_counter() - stopped_at < down_s:
            time.sleep(min(60.0, down_s - (time.perf_counter() - stopped_at)))
            log(f"  down {time.perf_counter() - stopped_at:.0f} s: backlog {status(stack.url)['backlog']:,}")
        at_restart = status(stack.url)
        log(f"starting the follower: backlog {at_restart['backlog']:,}, oldest {at_restart['lag_ms'] / 1000:.0f} s")
        restarted = time.perf_counter()
        stack.follower.start()
        trace: list[tuple[float, int, int]] = []
        caught_up_s = None
        while caught_up_s is None:
            if not stack.follower.alive():
                raise RuntimeError(f"the follower exited: {stack.follower.log()[-2000:]}")
            report = status(stack.url)
            elapsed = time.perf_counter() - restarted
            if not trace or elapsed - trace[-1][0] >= 5:
                trace.append((round(elapsed, 1), report["backlog"], report["lag_ms"]))
            if report["lag_ms"] <= 1000 and report["backlog"] <= rate:
                caught_up_s = elapsed
            elif elapsed > 3600:
                raise TimeoutError(f"not caught up in an hour: {report}")
            time.sleep(0.1)
        log(f"caught up {caught_up_s:.1f} s after the restart (writes still going); stopping the writes")
        writer.stop.set()
        writer.join(30)
        written_s = time.perf_counter() - stopped_at
        emptied = time.perf_counter()
        empty_s = wait_caught_up(stack.url, stack.follower, timeout=600)
        rows = outbox_rows(stack.url)
        final = status(stack.url)
        counts = _count_differences(stack)
        follower_log = stack.follower.log()
    changes = sum(writer.operations.values())
    return {"down_s": down_s, "changes_per_s_target": rate, "contacts": contacts,
            "first_copy_seconds": round(stack.copy_seconds, 1), "backlog_at_restart": at_restart["backlog"],
            "oldest_change_at_restart_s": round(at_restart["lag_ms"] / 1000, 1),
            "caught_up_after_restart_s": round(caught_up_s, 1),
            "empty_after_writes_stopped_s": round(empty_s, 2),
            "restart_to_empty_s": round(emptied - restarted + empty_s, 1),
            "drain_rate_changes_per_s": round((at_restart["backlog"] + rate * caught_up_s) / caught_up_s),
            "writes": {"seconds": round(written_s, 1), "operations": writer.operations, "total": changes,
                       "achieved_per_s": round(changes / written_s, 1),
                       "behind_max_ms": round(writer.behind_max * 1000, 1), "errors": writer.errors[:5]},
            "backlog_trace_after_restart": trace, "final_status": final, "kontak_changes_rows_final": rows,
            "convex_counts_differ": counts, "follower_log_tracebacks": follower_log.count("Traceback"),
            "follower_log_tail": follower_log.splitlines()[-8:]}


def _count_differences(stack: Stack) -> list[str]:
    """Contacts, notes, conversations and messages per workspace: PostgreSQL's against Convex's."""
    admin = ConvexAdmin(stack.standin.url, API_KEY)
    tables = {"contacts": "contacts", "notes": "contact_notes", "conversations": "conversations",
              "messages": "messages"}
    problems = []
    with psycopg.connect(stack.url, autocommit=True) as conn:
        for (workspace,) in conn.execute("SELECT id::text FROM workspaces ORDER BY id").fetchall():
            postgres = {k: conn.execute(f"SELECT count(*) FROM {t} WHERE workspace_id = %s",
                                        (workspace,)).fetchone()[0] for k, t in tables.items()}
            convex = admin.counts(workspace)
            if postgres != convex:
                problems.append(f"{workspace}: PostgreSQL {postgres} != Convex {convex}")
    return problems

