"""`sync-convex --follow`: Convex kept equal to PostgreSQL, change by change (docs/contract.md §14).

The follower works in steps, each one PostgreSQL transaction that first locks its own row
(so two followers take turns and each snapshot is newer than the last) and takes a version:
- while Convex does not hold a whole copy, a copy step sends the next contacts in id order
  (a new copy first names a new epoch, sends the workspaces and keys, and drops the changes
  it covers; the last step sweeps what the copy did not bring);
- then each follow step reads up to `batch` captured changes, the current rows they name,
  sends those (absent rows as deletes) and deletes the changes it sent.
The step commits only after Convex answered, so a kill at any point leaves the changes to be
sent again, by a later version, which Convex applies over the earlier one: nothing is lost and
a change applied twice is the same data twice. PostgreSQL or Convex going away pauses it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from commands.connection import scoped
from commands.keys.workspace_keys import keys_by_id, list_keys
from commands.sync import capture
from commands.sync.postgres_to_convex import read_batch, read_contacts, rows_in, workspaces
from services.convex.admin import ConvexAdmin, EpochChanged
from services.errors import ApiError

log = logging.getLogger("kontak.follow")

REPORT_EVERY_S = 5.0  # one progress line at most this often (and the heartbeat --status reads)
IDLE_LINE_EVERY_S = 60.0  # while nothing changes, a line this often says it still runs
MAX_BACKOFF_S = 5.0
ROWS_PER_REQUEST = 2000  # documents per apply request: well inside an HTTP action's body limit


@dataclass
class Progress:
    applied: int = 0
    stale: int = 0
    refused: int = 0
    last_report: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)


class Follower:
    """One follower process: `run()` until `stop` is set."""

    def __init__(self, connect: Callable[[], psycopg.Connection], config: Mapping[str, Any], admin: ConvexAdmin,
                 batch: int = 500, interval: float = 0.1, stop: threading.Event | None = None) -> None:
        self.connect, self.config, self.admin = connect, config, admin
        self.destination = config["CONVEX_SITE_URL"]
        self.batch, self.interval = batch, interval
        self.stop = stop or threading.Event()
        self.progress = Progress()
        self.conn: psycopg.Connection | None = None

    # -- the loop --------------------------------------------------------------------------------

    def start(self) -> None:
        """What must hold before following (raises a one-line error otherwise): capture on, Convex
        answering with this key, and PostgreSQL's idea of Convex's copy checked against Convex's."""
        self.conn = self.connect()
        # Convex first (its URL, the key, the import gate): a wrong one must not leave capture on.
        held = self.admin.follow_state()["epoch"]
        with self._tx():
            switched = capture.capture_on(self.conn)
        if switched:
            log.info("follow: change capture switched on")
        self._check_epoch(held)

    def run(self) -> None:
        backoff = 0.2
        while not self.stop.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self.connect()
                    self._check_epoch(self.admin.follow_state()["epoch"])
                moved = self._step()
                backoff = 0.2
                self._report()
                if not moved:
                    self.stop.wait(self.interval)
            except EpochChanged:
                log.warning("follow: Convex holds another copy (emptied or restarted?): copying again")
                self._forget_epoch()
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                self._pause(f"PostgreSQL unavailable ({type(error).__name__})", backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                self._close()
            except ApiError as error:
                self._pause(f"Convex unavailable ({error})", backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        log.info("follow: stopped; what is captured from now on waits in PostgreSQL for the next run")
        self._close()

    def _pause(self, why: str, backoff: float) -> None:
        if time.monotonic() - self.progress.last_report >= REPORT_EVERY_S or backoff <= 0.2:
            log.warning("follow: %s; retrying", why)
            self.progress.last_report = time.monotonic()
        self.stop.wait(backoff)

    @contextmanager
    def _tx(self, repeatable: bool = False) -> Iterator[psycopg.Connection]:
        """Every statement runs in one of these: through a transaction pooler, that is what keeps
        DATABASE_SCHEMA in sight (commands/connection.py `scoped`)."""
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ if repeatable else None
        with scoped(self.conn, self.config) as conn:
            yield conn

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _report(self) -> None:
        now = time.monotonic()
        if now - self.progress.last_report < REPORT_EVERY_S:
            return
        with self._tx():
            pending = capture.backlog(self.conn)
            self.conn.execute("UPDATE kontak_follower SET cycle_at = clock_timestamp()")  # --status reads it
        p = self.progress
        p.last_report = now
        busy = pending.changes or p.applied or p.stale or p.refused
        if not busy and now - p.last_line < IDLE_LINE_EVERY_S:
            return
        log.info("follow: backlog=%d lag_ms=%d applied=%d stale=%d refused=%d", pending.changes, pending.lag_ms,
                 p.applied, p.stale, p.refused)
        p.applied = p.stale = p.refused = 0
        p.last_line = now

    # -- epochs: which copy Convex holds ---------------------------------------------------------

    def _state(self) -> tuple[str | None, str | None, bool]:
        with self._tx():
            return self.conn.execute("SELECT epoch, destination, backfilled FROM kontak_follower").fetchone()

    def _check_epoch(self, held: str | None) -> None:
        """`held`: the epoch Convex holds."""
        epoch, destination, _ = self._state()
        if epoch is not None and (destination != self.destination or held != epoch):
            log.warning("follow: Convex does not hold this database's copy: copying again")
            self._forget_epoch()

    def _forget_epoch(self) -> None:
        with self._tx():
            self.conn.execute("LOCK TABLE kontak_follower IN EXCLUSIVE MODE")
            self.conn.execute("UPDATE kontak_follower SET epoch = NULL, backfilled = false, backfill_after = NULL")

    # -- steps -----------------------------------------------------------------------------------

    def _step(self) -> bool:
        """One copy or follow step; False when there was nothing to do."""
        epoch, destination, backfilled = self._state()
        if backfilled and epoch is not None and destination == self.destination:
            with self._tx():
                if not self.conn.execute("SELECT EXISTS (SELECT 1 FROM kontak_changes)").fetchone()[0]:
                    return False  # the idle poll: no lock, no version
        with self._tx(repeatable=True):
            # Before any query, so the snapshot is taken after the lock (SET and LOCK take none).
            self.conn.execute("LOCK TABLE kontak_follower IN EXCLUSIVE MODE")
            version = self.conn.execute("SELECT nextval('kontak_change_versions')").fetchone()[0]
            epoch, destination, backfilled, after = self.conn.execute(
                "SELECT epoch, destination, backfilled, backfill_after::text FROM kontak_follower").fetchone()
            if epoch is None or destination != self.destination:
                self._new_copy(version)
                return True
            if not backfilled:
                return self._copy_step(epoch, version, after)
            return self._follow_step(epoch, version)

    def _new_copy(self, version: int) -> None:
        """A new epoch: Convex told, the workspaces and keys sent, the changes it covers dropped."""
        epoch = uuid.uuid4().hex
        self.admin.set_follow_state(epoch, False)
        self._send(epoch, version, workspaces=workspaces(self.conn),
                   keys=[k.for_convex() for k in list_keys(self.conn)])
        # Every change visible now is older than what the copy will read: the copy covers it.
        dropped = self.conn.execute("DELETE FROM kontak_changes").rowcount
        self.conn.execute("""UPDATE kontak_follower SET epoch = %s, destination = %s, backfilled = false,
                             backfill_after = NULL, cycle_at = clock_timestamp()""", (epoch, self.destination))
        log.info("follow: copying PostgreSQL into Convex (copy %s; %d captured change(s) it covers dropped)",
                 epoch[:8], dropped)

    def _copy_step(self, epoch: str, version: int, after: str | None) -> bool:
        batch = read_batch(self.conn, after, self.batch)
        if not batch.records:
            swept = self.admin.follow_sweep(epoch)
            self.admin.set_follow_state(epoch, True)
            self.conn.execute("UPDATE kontak_follower SET backfilled = true, cycle_at = clock_timestamp()")
            log.info("follow: copy %s complete (%d document(s) it did not bring deleted); following", epoch[:8],
                     swept)
            return True
        self._send(epoch, version, contacts=dict(zip(batch.ids, batch.records, strict=True)))
        self.conn.execute("UPDATE kontak_follower SET backfill_after = %s, cycle_at = clock_timestamp()",
                          (batch.last,))
        return True

    def _follow_step(self, epoch: str, version: int) -> bool:
        changes = self.conn.execute(
            """SELECT id, contact_id::text, conversation_id::text, workspace_id::text, key_id::text, truncated
               FROM kontak_changes ORDER BY id LIMIT %s""", (self.batch,)).fetchall()
        if not changes:
            return False
        if any(change[5] for change in changes):
            log.warning("follow: a table was truncated: copying again")
            self.conn.execute("UPDATE kontak_follower SET epoch = NULL, backfilled = false")
            return True
        contact_ids = {c[1] for c in changes if c[1]} | self._owners({c[2] for c in changes if c[2]})
        workspace_ids = sorted({c[3] for c in changes if c[3]})
        key_ids = sorted({c[4] for c in changes if c[4]})
        records = read_contacts(self.conn, sorted(contact_ids))
        spaces = workspaces(self.conn, workspace_ids)
        keys = [k.for_convex() for k in keys_by_id(self.conn, key_ids)]
        self._send(epoch, version, workspaces=spaces, contacts=records,
                   deleted_workspaces=sorted(set(workspace_ids) - {w["id"] for w in spaces}),
                   deleted_contacts=sorted(contact_ids - set(records)),
                   keys=keys, deleted_keys=sorted(set(key_ids) - {k["id"] for k in keys}))
        self.conn.execute("DELETE FROM kontak_changes WHERE id = ANY(%s)", ([c[0] for c in changes],))
        self.conn.execute("UPDATE kontak_follower SET cycle_at = clock_timestamp()")
        return True

    def _owners(self, conversation_ids: set[str]) -> set[str]:
        """The contacts of these conversations (one deleted since has sent its contact itself)."""
        if not conversation_ids:
            return set()
        rows = self.conn.execute("SELECT contact_id::text FROM conversations WHERE id = ANY(%s::uuid[])",
                                 (sorted(conversation_ids),)).fetchall()
        return {row[0] for row in rows}

    # -- Convex ----------------------------------------------------------------------------------

    def _send(self, epoch: str, version: int, contacts: dict[str, dict[str, Any]] | None = None,
              **rest: list[Any]) -> None:
        """One change set, in requests of at most ROWS_PER_REQUEST documents, all under `version`."""
        body = {"epoch": epoch, "version": version, "workspaces": [], "deleted_workspaces": [], "contacts": [],
                "deleted_contacts": [], "keys": [], "deleted_keys": [], **rest}
        chunk, rows = [], 0
        for source_id, record in (contacts or {}).items():
            chunk.append({"source_id": source_id, **record})
            rows += rows_in([record])
            if rows >= ROWS_PER_REQUEST:
                self._apply({**body, "contacts": chunk})
                body = {**body, **{k: [] for k in body if k not in ("epoch", "version")}}
                chunk, rows = [], 0
        self._apply({**body, "contacts": chunk})

    def _apply(self, body: dict[str, Any]) -> None:
        if not any(isinstance(v, list) and v for v in body.values()):
            return
        answer = self.admin.follow_apply(body)
        p = self.progress
        p.applied += answer.get("applied", 0)
        p.stale += answer.get("stale", 0)
        refused = answer.get("refused", [])
        p.refused += len(refused)
        for refusal in refused:
            log.error("follow: Convex refused contact %s (%s): it is not in Convex", refusal.get("source_id"),
                      refusal.get("reason"))
        self.conn.execute("UPDATE kontak_follower SET applied = applied + %s, refused = refused + %s",
                          (answer.get("applied", 0), len(refused)))
