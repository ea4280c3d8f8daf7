"""`sync-convex --follow` (docs/contract.md §14): Convex kept equal to PostgreSQL, whoever writes,
through kills of the follower, a PostgreSQL restart and a Convex restart."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from helpers import API_KEY, wait_until
from helpers_follow import (
    SqlWriter,
    Touched,
    WebhookWriter,
    caught_up,
    count_differences,
    follow_status,
    lookup_differences,
    phone_of,
    run_cli,
    synthetic_dataset,
)
from services.convex.admin import ConvexAdmin
from services.postgres.dataset import load_dataset
from services.postgres.migrations import upgrade

SEEDED = 120


@pytest.fixture()
def stack(own_postgres, own_standin, gunicorn, follower_process):
    """PostgreSQL with synthetic data, an empty stand-in, gunicorn on both, and a follower (not started)."""
    postgres = own_postgres(synthetic_dataset(SEEDED))
    standin = own_standin()
    env = {"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    server = gunicorn(**env)
    return postgres, standin, server, follower_process(env), env


def _settle(url: str, follower, timeout: float = 90, schema: str = "public") -> None:
    wait_until(lambda: caught_up(url, schema), timeout, f"the follower to catch up (log: {follower.log()[-2000:]})")


def test_convex_follows_mixed_writers_through_kills_and_restarts(stack):
    postgres, standin, server, follower, _env = stack
    follower.start()
    _settle(postgres.url, follower)
    stop, touched = threading.Event(), Touched()
    writers = [SqlWriter(postgres.url, stop, touched, seed=1, first_phone=10_000),
               SqlWriter(postgres.url, stop, touched, seed=2, first_phone=20_000),
               WebhookWriter(server.url, stop, touched, seed=3,
                             phones=range(SEEDED - 20, SEEDED + 40))]
    for writer in writers:
        writer.start()
    started = time.monotonic()

    def at(second: float) -> None:
        time.sleep(max(0.0, started + second - time.monotonic()))

    at(8)
    follower.kill()
    at(10)
    follower.start()
    at(20)
    postgres.stop("fast")
    postgres.start()
    at(32)
    follower.kill()
    at(34)
    follower.start()
    at(44)
    standin.stop()  # everything Convex held is gone: only the follower may bring it back
    standin.start()
    at(62)
    stop.set()
    for writer in writers:
        writer.join(30)
    assert not [e for w in writers for e in w.errors], [e for w in writers for e in w.errors][:5]
    assert writers[2].sent > 50 and len(touched.operations) >= 15, touched.operations

    _settle(postgres.url, follower, timeout=120)
    admin = ConvexAdmin(standin.url, API_KEY)
    workspaces = {w for w, _ in touched.contacts | touched.deleted}
    assert count_differences(postgres.url, admin, workspaces) == []
    assert lookup_differences(server.url, touched.contacts, touched.deleted) == []
    assert touched.deleted, "the writers deleted nothing"
    log = follower.log()
    assert "Traceback" not in log
    assert log.count("copying PostgreSQL into Convex") >= 2, "the restarted stand-in was not copied again"
    assert follower.stop() == 0


def test_a_follower_down_catches_up_and_trims(stack):
    postgres, _standin, server, follower, _env = stack
    follower.start()
    _settle(postgres.url, follower)
    follower.kill()
    stop, touched = threading.Event(), Touched()
    writer = SqlWriter(postgres.url, stop, touched, seed=7, first_phone=30_000)
    writer.start()
    wait_until(lambda: follow_status(postgres.url)["backlog"] >= 300, 60, "300 changes captured")
    stop.set()
    writer.join(30)
    waiting = follow_status(postgres.url)["backlog"]
    follower.start()
    _settle(postgres.url, follower)
    report = follow_status(postgres.url)
    assert report["backlog"] == 0 and report["status"] == "ready", (waiting, report)
    assert lookup_differences(server.url, touched.contacts, touched.deleted) == []
    assert follower.stop() == 0


def test_a_replayed_copy_is_stale_and_changes_nothing(stack):
    postgres, standin, server, follower, _env = stack
    follower.start()
    _settle(postgres.url, follower)
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("UPDATE contacts SET lead_status = 'hot' WHERE phone = %s", (phone_of(4),))
    _settle(postgres.url, follower)
    epoch = follow_status(postgres.url)["epoch"]
    admin = ConvexAdmin(standin.url, API_KEY)
    # A change of version 1 (older than any the follower sent) arriving late: stale, not applied.
    record = synthetic_dataset(SEEDED)["contacts"][4]
    answer = admin.follow_apply({"epoch": epoch, "version": 1, "workspaces": [], "deleted_workspaces": [],
                                 "contacts": [{"source_id": _contact_id(postgres.url, phone_of(4)), **record}],
                                 "deleted_contacts": [], "keys": [], "deleted_keys": []})
    assert answer["stale"] == 1 and answer["applied"] == 0
    assert lookup_differences(server.url, {(record["workspace_id"], phone_of(4))}, set()) == []
    assert follower.stop() == 0


def _contact_id(url: str, phone: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return str(conn.execute("SELECT id FROM contacts WHERE phone = %s", (phone,)).fetchone()[0])


def test_status_and_capture_off(stack):
    postgres, _standin, _server, follower, env = stack
    idle = run_cli(env, "sync-convex", "--status")
    assert idle.returncode == 1 and json.loads(idle.stdout)["capture"] == "off"
    follower.start()
    _settle(postgres.url, follower)
    ready = run_cli(env, "sync-convex", "--status")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    report = json.loads(ready.stdout)
    assert report["status"] == "ready" and report["capture"] == "on" and report["backlog"] == 0
    assert follower.stop() == 0
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("UPDATE contacts SET lead_score = 1")
    off = run_cli(env, "sync-convex", "--capture", "off")
    assert off.returncode == 0 and f"{SEEDED:,} waiting change(s) dropped" in off.stdout, off.stdout + off.stderr
    assert follow_status(postgres.url)["capture"] == "off"


def test_what_it_cannot_follow_ends_it_with_one_line(stack, own_standin):
    postgres, _standin, _server, _follower, env = stack
    cases = {
        "wrong Convex URL": ({**env, "CONVEX_SITE_URL": "http://127.0.0.1:9"}, "unreachable"),
        "wrong key": ({**env, "CRM_API_KEY": "not-the-key-0000"}, "401"),
    }
    for name, (case_env, said) in cases.items():
        result = run_cli(case_env, "sync-convex", "--follow", timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and said in lines[0], (name, result.stderr)
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("CREATE ROLE kontak_writer LOGIN")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO kontak_writer")
        conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO kontak_writer")
    writer_url = postgres.url.replace("postgres@", "kontak_writer@")
    result = run_cli({**env, "DATABASE_URL": writer_url}, "sync-convex", "--follow", timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "cannot switch change capture on" in lines[0] and "must own" in lines[0], lines


def test_through_a_transaction_pooler_in_a_schema_of_its_own(own_postgres, own_standin, pgbouncer_for, gunicorn,
                                                               follower_process):
    """Supabase's transaction pooler: PgBouncer in transaction mode, Kontak's tables in DATABASE_SCHEMA,
    and a writer whose own search path is elsewhere (a psql session writing "kontak".contacts)."""
    postgres, dataset = own_postgres(), synthetic_dataset(20)
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        upgrade(conn, "kontak")
        load_dataset(conn, dataset)
    standin = own_standin()
    env = {"DATABASE_URL": pgbouncer_for(postgres), "DATABASE_POOL_MODE": "transaction", "DATABASE_SCHEMA": "kontak",
           "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    server, follower = gunicorn(**env), follower_process(env).start()
    _settle(postgres.url, follower, schema="kontak")
    touched = {(c["workspace_id"], c["phone"]) for c in dataset["contacts"][:6]}
    with psycopg.connect(postgres.url, autocommit=True) as conn:  # search_path: public
        for _workspace, phone in sorted(touched)[:3]:
            conn.execute("UPDATE kontak.contacts SET lead_status = 'hot', tags = '{psql}' WHERE phone = %s", (phone,))
            conn.execute("""INSERT INTO kontak.contact_notes (workspace_id, contact_id, content)
                            SELECT workspace_id, id, 'dari psql' FROM kontak.contacts WHERE phone = %s""", (phone,))
        deleted = sorted(touched)[3]
        conn.execute("DELETE FROM kontak.contacts WHERE phone = %s", (deleted[1],))
    _settle(postgres.url, follower, schema="kontak")
    assert lookup_differences(server.url, touched - {deleted}, {deleted}) == []
    assert "prepared statement" not in follower.log()
    assert follower.stop() == 0
