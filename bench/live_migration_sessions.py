"""bench/migration_live.py's sessions: lookups in a loop, the migration (run again while a lock wait
makes it give up), a long read transaction, and a monitor sampling pg_stat_activity."""

from __future__ import annotations

import random
import statistics
import threading
import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from services.postgres import migrations

SLOW_S = 1.0  # the acceptance item's bound on a blocked lookup
ATTEMPTS = 20  # of the upgrade, when a lock wait makes it fail (0005: lock_timeout 800ms)


class LookupLoop:
    """`threads` threads, each on its own connection (autocommit, prepared statements, like the
    service's pool), looking up random `targets` with `statement` until stopped."""

    def __init__(self, url: str, statement: str, targets: list[tuple[str, str]], threads: int) -> None:
        self.url, self.statement, self.targets = url, statement, targets
        self.samples: list[list[tuple[float, float, bool]]] = [[] for _ in range(threads)]  # (start, seconds, found)
        self.errors: list[tuple[float, str]] = []
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._ready = threading.Barrier(threads + 1)
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._ready.wait()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        out = self.samples[index]
        with psycopg.connect(self.url, autocommit=True, prepare_threshold=0,
                             application_name="kontak-live-lookup") as conn:
            self.pids.add(conn.info.backend_pid)
            for ws, phone in rng.sample(self.targets, 50):  # prepared and warm before the clock starts
                conn.execute(self.statement, (ws, phone)).fetchone()
            self._ready.wait()
            while not self._stop.is_set():
                ws, phone = rng.choice(self.targets)
                started = time.perf_counter()
                try:
                    row = conn.execute(self.statement, (ws, phone)).fetchone()
                except psycopg.Error as exc:  # recorded, never hidden: its time counts like any lookup's
                    out.append((started, time.perf_counter() - started, False))
                    self.errors.append((started, f"{type(exc).__name__}: {exc}".splitlines()[0]))
                    continue
                out.append((started, time.perf_counter() - started, row is not None))

    def all_samples(self) -> list[tuple[float, float, bool]]:
        return sorted(s for per_thread in self.samples for s in per_thread)


class ActivityMonitor:
    """Samples pg_stat_activity every `interval` s: the migration session's statement and wait, and
    how many lookup sessions wait on a lock. Statement changes are kept as a timeline."""

    def __init__(self, url: str, migration_pid: int, lookup_pids: set[int], interval: float = 0.02) -> None:
        self.url, self.migration_pid, self.lookup_pids, self.interval = url, migration_pid, lookup_pids, interval
        self.timeline: list[tuple[float, str, str | None]] = []  # (time, statement, wait)
        self.max_lookups_waiting_on_lock = 0
        self.samples_with_lookups_waiting = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="kontak-live-monitor") as conn:
            last = None
            while not self._stop.is_set():
                rows = conn.execute("SELECT pid, state, query, wait_event_type, wait_event FROM pg_stat_activity "
                                    "WHERE pid = ANY(%s)", ([self.migration_pid, *self.lookup_pids],)).fetchall()
                now = time.perf_counter()
                waiting = sum(1 for pid, _s, _q, wtype, _w in rows if pid != self.migration_pid and wtype == "Lock")
                self.samples += 1
                self.samples_with_lookups_waiting += waiting > 0
                self.max_lookups_waiting_on_lock = max(self.max_lookups_waiting_on_lock, waiting)
                for pid, state, query, wtype, wait in rows:
                    if pid != self.migration_pid:
                        continue
                    current = (" ".join((query or "").split())[:90] if state == "active" else f"({state})",
                               f"{wtype}:{wait}" if wtype else None)
                    if current != last:
                        self.timeline.append((now, *current))
                        last = current
                time.sleep(self.interval)


def stats_ms(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"lookups": 0}
    ordered = sorted(latencies)
    quantile = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {"lookups": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(quantile[98] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 1),
            "over_1s": sum(1 for x in ordered if x > SLOW_S)}


class Migration(threading.Thread):
    """`migrations.upgrade` on a session of its own (`pid` set once connected). A lock wait past 0005's
    lock_timeout makes the upgrade fail cleanly, nothing half-done, and the documented answer is to run
    it again: up to ATTEMPTS attempts, each recorded."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.connected = threading.Event()
        self.pid = 0
        self.attempts: list[dict[str, Any]] = []
        self.applied: list[str] = []
        self.started = self.ended = 0.0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, application_name="kontak-migration") as conn:
                self.pid = conn.info.backend_pid
                self.connected.set()
                self.started = time.perf_counter()
                for attempt in range(1, ATTEMPTS + 1):
                    try:
                        self.applied = [m.label for m in migrations.upgrade(conn)]
                    except pg_errors.LockNotAvailable as exc:
                        self.attempts.append({"attempt": attempt, "result": str(exc).splitlines()[0]})
                        continue
                    self.attempts.append({"attempt": attempt, "result": "applied"})
                    self.ended = time.perf_counter()
                    return
                raise RuntimeError(f"the upgrade did not get its locks in {ATTEMPTS} attempts: {self.attempts}")
        except BaseException as exc:  # reported by the caller
            self.failure = exc
        finally:
            self.connected.set()


class LongReader(threading.Thread):
    """A transaction that reads contacts and stays open `seconds` (a report, an export): it holds
    ACCESS SHARE on contacts, so 0005's ALTER TABLE waits behind it and lookups queue behind the
    ALTER, at most 0005's lock_timeout each time."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.url, self.seconds = url, seconds
        self.holding = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, application_name="kontak-live-long-reader") as conn:
            conn.execute("SELECT count(*) FROM contacts WHERE lead_score >= 0").fetchone()
            self.holding.set()
            time.sleep(self.seconds)
            conn.commit()
