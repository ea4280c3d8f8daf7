"""sync-convex: PostgreSQL into the Convex stand-in, resumable, verified.

The scale run (100,000 contacts, the issue's acceptance number) is slow on
the stand-in until it reads through indexes; it runs when
KONTAK_SYNC_SCALE=1 (`make sync-scale-test`), with KONTAK_SYNC_CONTACTS to
override the size.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from app import create_app
from commands.compare import synthetic
from commands.connection import connection_label
from commands.sync import postgres_to_convex, verification
from services.config import PROJECT_ROOT
from services.postgres.bulk import copy_contacts, replace_workspaces
from services.postgres.dataset import sample_contacts

SEED = 7
SCALE = int(os.environ.get("KONTAK_SYNC_CONTACTS", "100000"))


def seed_postgres(db: psycopg.Connection, contacts: int) -> int:
    """The synthetic data set into PostgreSQL; returns how many rows it holds."""
    replace_workspaces(db, synthetic.workspaces(SEED))
    copy_contacts(db, synthetic.contacts(SEED, contacts))
    tables = ("workspaces", "contacts", "contact_notes", "conversations", "messages")
    return sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


@pytest.fixture()
def cli(env):
    app = create_app(env)
    yield app.test_cli_runner()
    app.extensions["kontak.db"].close()


def test_sync_copies_everything_and_verifies(cli, db, convex, tmp_path):
    rows = seed_postgres(db, 150)
    result = cli.invoke(args=["sync-convex", "--batch", "40", "--samples", "30", "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "synced 150 contacts" in result.output and "rows/s" in result.output
    assert "lookups: 30 of 30 equal on both routes" in result.output
    assert "verification: PASS" in result.output
    assert json.loads((tmp_path / "s.json").read_text())["done"] is True
    again = cli.invoke(args=["sync-convex", "--samples", "5", "--state", str(tmp_path / "s.json")])
    assert again.exit_code == 0 and "synced 150 contacts" in again.output, "a finished run starts over"
    assert convex.clear() == rows, "every row once in Convex: nothing duplicated"


def test_verification_names_contacts_that_differ(env, cli, db, convex, tmp_path):
    seed_postgres(db, 20)
    assert cli.invoke(args=["sync-convex", "--samples", "0", "--state", str(tmp_path / "s.json")]).exit_code == 0
    db.execute("UPDATE contacts SET lead_score = 100 - lead_score")
    result = cli.invoke(args=["sync-convex", "--samples", "20", "--state", str(tmp_path / "other.json"),
                              "--batch", "1000"])
    assert result.exit_code == 0, "a new run sends the changed contacts again"
    db.execute("UPDATE contacts SET name = 'Changed only in PostgreSQL'")

    app = create_app(env)
    with app.app_context():
        report = verification.Verification()
        probes = sample_contacts(db, 10)
        client = app.test_client()

        def get(path, query):
            response = client.get(path, query_string=query, headers={"x-api-key": app.config["CRM_API_KEY"]})
            return response.status_code, response.get_json()

        verification.verify_lookups(get, probes, report)
    app.extensions["kontak.db"].close()
    assert not report.ok and len(report.mismatches) == 10
    assert "Changed only in PostgreSQL" in report.mismatches[0] and "****" in report.mismatches[0]  # masked


def test_counts_differing_in_any_table_fail_the_verification(cli, db, convex, tmp_path):
    """Counts per workspace and table come from the deployment (GET /http/import/counts); any difference exits 1."""
    rows = seed_postgres(db, 30)
    state = str(tmp_path / "s.json")
    workspaces = [w for (w,) in db.execute("SELECT id::text FROM workspaces ORDER BY id").fetchall()]
    first = cli.invoke(args=["sync-convex", "--samples", "5", "--state", state])
    assert first.exit_code == 0, first.output
    assert f"counts: {len(workspaces)} of {len(workspaces)} workspace(s) equal in every table" in first.output

    # A contact the deployment holds and PostgreSQL does not (deleted there since the last copy).
    convex.import_dataset({"workspaces": [], "contacts": [{
        "workspace_id": workspaces[0], "phone": "+6281999000111", "name": "Only in Convex",
        "notes": [{"content": "stale", "created_at": "2026-01-01T00:00:00.000Z"}]}]})
    expected = verification.postgres_counts(db)[workspaces[0]]
    stale = cli.invoke(args=["sync-convex", "--samples", "5", "--state", state])
    assert stale.exit_code == 1, stale.output
    assert (f"MISMATCH counts workspace {workspaces[0]} contacts: postgres {expected['contacts']:,} "
            f"convex {expected['contacts'] + 1:,}") in stale.output
    assert (f"MISMATCH counts workspace {workspaces[0]} notes: postgres {expected['notes']:,} "
            f"convex {expected['notes'] + 1:,}") in stale.output
    assert "verification FAILED: 2 mismatch(es)" in stale.output
    assert "verification: PASS" not in stale.output

    cleared = cli.invoke(args=["sync-convex", "--clear", "--samples", "5", "--state", state])
    assert cleared.exit_code == 0, cleared.output
    assert convex.clear() == rows


def test_a_row_written_behind_the_resume_point_fails_the_verification(env, cli, db, convex, tmp_path):
    """PostgreSQL changed while a run was interrupted: the resumed run copies nothing more, and counts catch it."""
    seed_postgres(db, 20)
    state = tmp_path / "s.json"
    assert cli.invoke(args=["sync-convex", "--samples", "0", "--state", str(state)]).exit_code == 0
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "done": False}))  # as if killed after its last batch
    contact, workspace = db.execute("SELECT id, workspace_id::text FROM contacts ORDER BY workspace_id, phone "
                                    "LIMIT 1").fetchone()
    db.execute("INSERT INTO contact_notes (workspace_id, contact_id, content) VALUES (%s, %s, 'added later')",
               (workspace, contact))
    notes = db.execute("SELECT count(*) FROM contact_notes WHERE workspace_id = %s", (workspace,)).fetchone()[0]
    result = cli.invoke(args=["sync-convex", "--samples", "0", "--state", str(state)])
    assert result.exit_code == 1, result.output
    assert "resuming after 20 contacts already acknowledged" in result.output and "synced 0 contacts" in result.output
    assert f"MISMATCH counts workspace {workspace} notes: postgres {notes:,} convex {notes - 1:,}" in result.output
    assert "verification FAILED: 1 mismatch(es)" in result.output


def test_a_deployment_without_the_count_endpoint_fails_the_verification(env, db, convex, monkeypatch):
    seed_postgres(db, 3)
    monkeypatch.setattr(verification.ConvexAdmin, "COUNTS_PATH", "/http/import/no-such-counts")
    report = verification.Verification()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        verification.verify_counts(conn, convex, report)
    assert not report.ok and "has no /http/import/counts" in report.mismatches[0]


def run_killed_half_way(env: dict[str, str], state: str, contacts: int, batch: int = 25) -> None:
    """`flask sync-convex` in its own process, SIGKILLed once it has acknowledged about half the contacts."""
    full_env = {**os.environ, **env}
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "sync-convex", "--batch", str(batch),
                                "--samples", "0", "--state", state], cwd=PROJECT_ROOT, env=full_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if json.loads(open(state).read())["contacts"] >= contacts // 2:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_sync_killed_half_way_then_repeated_completes_without_duplicates(env, cli, db, convex, tmp_path):
    rows = seed_postgres(db, 200)
    state = str(tmp_path / "state.json")
    run_killed_half_way(env, state, 200)
    progress = json.loads(open(state).read())
    assert 100 <= progress["contacts"] < 200 and progress["done"] is False
    result = cli.invoke(args=["sync-convex", "--batch", "25", "--samples", "40", "--state", state])
    assert result.exit_code == 0, result.output
    assert f"resuming after {progress['contacts']:,} contacts" in result.output
    assert f"synced {200 - progress['contacts']} contacts" in result.output
    assert "verification: PASS" in result.output
    assert convex.clear() == rows, "equal counts: every PostgreSQL row once in Convex"


@pytest.mark.skipif(os.environ.get("KONTAK_SYNC_SCALE") != "1", reason="scale run: KONTAK_SYNC_SCALE=1")
@pytest.mark.timeout(7200)
def test_sync_at_scale_killed_and_repeated(env, cli, db, convex, tmp_path, capsys):
    """At real size: 100,000 contacts, killed half-way, repeated; counts equal, nothing twice.

    Both halves use sync-convex's default batch (200 contacts): the kill lands within one batch of half-way.
    Results: bench/results/sync-100k-*-vm.md.
    """
    started = time.perf_counter()
    rows = seed_postgres(db, SCALE)
    seeded = time.perf_counter()
    state = str(tmp_path / "state.json")
    run_killed_half_way(env, state, SCALE, batch=200)
    killed = time.perf_counter()
    progress = json.loads(open(state).read())
    assert SCALE // 2 <= progress["contacts"] < SCALE and progress["done"] is False
    result = cli.invoke(args=["sync-convex", "--samples", "200", "--state", state])
    repeated = time.perf_counter()
    assert result.exit_code == 0, result.output
    assert f"resuming after {progress['contacts']:,} contacts" in result.output
    assert f"synced {SCALE - progress['contacts']:,} contacts" in result.output
    assert "counts: 3 of 3 workspace(s) equal in every table" in result.output
    assert "verification: PASS" in result.output
    assert convex.clear() == rows, "equal counts: every PostgreSQL row once in Convex"
    cleared = time.perf_counter()
    # The progress bar's frames dropped; the line after its last frame starts on the same line.
    lines = (re.sub(r"^Convex:.*?(?=synced |$)", "", line) for line in result.output.replace("\r", "\n").splitlines())
    report = "\n".join(line for line in lines if line)
    with capsys.disabled():
        print(f"\nsync scale: {SCALE:,} contacts, {rows:,} rows; seeded PostgreSQL in {seeded - started:.0f} s; "
              f"first run killed after {progress['contacts']:,} contacts acknowledged, {killed - seeded:.0f} s; "
              f"repeated run (copy + verification) {repeated - killed:.0f} s; "
              f"sync-convex total {repeated - seeded:.0f} s; clear (no duplicates: {rows:,} deleted) "
              f"{cleared - repeated:.0f} s; test total {cleared - started:.0f} s\n{report}")


# --- identity beyond the phone (docs/contract.md §4a) -----------------------------------------------------------

W = "00000000-0000-4000-8000-0000000000c1"
ONLY_BSUID, BOTH_BSUID = "ID.13491208655302741918", "ID.99887766554433221100"
IDENTITY = {
    "workspaces": [{"id": W, "name": "Identity", "kapso_phone_id": None, "created_at": "2026-01-01T00:00:00.000Z"}],
    "contacts": [
        {"workspace_id": W, "phone": None, "bsuid": ONLY_BSUID, "parent_bsuid": "ID.ENT.11815799212886844830",
         "username": "rina.uk", "name": None, "kapso_name": None, "email": None, "lead_status": "warm",
         "lead_score": 30, "tags": ["ads"], "created_at": "2026-01-02T00:00:00.000Z",
         "updated_at": "2026-01-03T00:00:00.000Z", "notes": [{"content": "Found us through ads",
                                                                "created_at": "2026-01-02T01:00:00.000Z"}],
         "conversation": {"status": "ended", "unread_count": 0, "last_message_at": "2026-01-02T02:00:00.000Z",
                          "last_message_preview": "Halo", "created_at": "2026-01-02T00:00:00.000Z",
                          "status_at": "2026-01-02T03:00:00.000Z",
                          "messages": [
                              {"direction": "inbound", "content": "Halo", "message_type": "text",
                               "kapso_message_id": "wamid.id-1", "status": "received",
                               "created_at": "2026-01-02T01:30:00.000Z"},
                              {"direction": "outbound", "content": "[Template: welcome]", "message_type": "template",
                               "kapso_message_id": "wamid.id-2", "status": "failed",
                               "created_at": "2026-01-02T02:00:00.000Z", "error_code": "131049",
                               "error_title": "Meta chose not to deliver"}]}},
        {"workspace_id": W, "phone": "+6281234500001", "bsuid": BOTH_BSUID, "username": "budi.s", "name": "Budi",
         "kapso_name": "Budi S", "email": None, "lead_status": "hot", "lead_score": 80, "tags": [],
         "created_at": "2026-01-04T00:00:00.000Z", "updated_at": "2026-01-04T00:00:00.000Z", "notes": [],
         "conversation": None},
        {"workspace_id": W, "phone": "+6281234500002", "name": "Phone Only", "kapso_name": None, "email": None,
         "lead_status": "new", "lead_score": 0, "tags": [], "created_at": "2026-01-05T00:00:00.000Z",
         "updated_at": "2026-01-05T00:00:00.000Z", "notes": [], "conversation": None},
    ],
}


def test_a_batch_read_back_is_the_data_set_identity_and_failures_included(db, load):
    load(IDENTITY)
    batch = postgres_to_convex.read_batch(db, None, 10)
    by_name = {r["username"] if r.get("username") else r["name"]: r for r in batch.records}
    expected = {c.get("username") or c["name"]: c for c in IDENTITY["contacts"]}
    assert by_name == expected, "every column of the data-set format, the optional ones only when set"
    assert postgres_to_convex.read_batch(db, batch.last, 10).records == []


def test_sync_copies_identity_and_verifies_by_bsuid(env, cli, db, load, convex, tmp_path):
    load(IDENTITY)
    result = cli.invoke(args=["sync-convex", "--samples", "3", "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "synced 3 contacts" in result.output and "lookups: 3 of 3 equal on both routes" in result.output
    app = create_app(env)
    asked: list[dict[str, str]] = []
    try:
        client = app.test_client()

        def get(path, query):
            asked.append(query)
            response = client.get(path, query_string=query, headers={"x-api-key": app.config["CRM_API_KEY"]})
            return response.status_code, response.get_json()

        report = verification.Verification()
        verification.verify_lookups(get, sample_contacts(db, 3), report)
        assert report.ok, report.mismatches
        by_bsuid = get("/api/contacts/by-phone-convex", {"bsuid": ONLY_BSUID, "workspace_id": W})
        assert by_bsuid[0] == 200 and by_bsuid[1]["contact"]["name"] == "rina.uk", "the name falls back to username"
        assert by_bsuid[1]["last_interaction"] == "2026-01-02T02:00:00.000Z"
        db.execute("UPDATE contacts SET lead_score = 99 WHERE bsuid = %s", (ONLY_BSUID,))
        verification.verify_lookups(get, [(W, None, ONLY_BSUID)], report)
    finally:
        app.extensions["kontak.db"].close()
    queries = [sorted(q) for q in asked[:6]]
    assert queries.count(["bsuid", "workspace_id"]) == 4 and queries.count(["phone", "workspace_id"]) == 2, \
        "a contact with a BSUID is asked by it (both routes), the phone-only one by its phone"
    assert len(report.mismatches) == 1 and "ID.134****918" in report.mismatches[0]
    assert ONLY_BSUID not in report.mismatches[0], "masked"


def test_a_state_file_of_the_phone_ordered_version_starts_over(cli, db, convex, tmp_path):
    """Its position is a (workspace_id, phone) pair: sending everything again is safe (the import replaces)."""
    seed_postgres(db, 12)
    state = tmp_path / "s.json"
    config = cli.app.config
    source = connection_label(config["DATABASE_URL"], config["DATABASE_SCHEMA"])
    state.write_text(json.dumps({"source": source, "destination": config["CONVEX_SITE_URL"], "contacts": 5,
                                 "rows": 40, "last": ["00000000-0000-4000-8000-000000000001", "+6281200000000"],
                                 "done": False}))
    result = cli.invoke(args=["sync-convex", "--samples", "12", "--state", str(state)])
    assert result.exit_code == 0, result.output
    assert "resuming" not in result.output and "synced 12 contacts" in result.output
    assert "lookups: 12 of 12 equal on both routes" in result.output
    assert json.loads(state.read_text())["order"] == "id"


def test_the_loaders_replace_by_bsuid_else_by_phone_and_want_one_of_them(db, load):
    load(IDENTITY)
    load(IDENTITY)
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 3, "loaded twice, stored once"

    def contact(**fields):
        return {"workspace_id": W, "created_at": "2026-02-01T00:00:00.000Z", **fields}

    # By BSUID: the username-only contact gains a phone; by BSUID or phone: the holder of either goes.
    load({"contacts": [contact(bsuid=ONLY_BSUID, phone="+6281234500009", name="Rina")]})
    load({"contacts": [contact(phone="+6281234500001", name="Phone only now")]})
    rows = db.execute("SELECT phone, bsuid, name FROM contacts ORDER BY phone").fetchall()
    assert rows == [("+6281234500001", None, "Phone only now"), ("+6281234500002", None, "Phone Only"),
                    ("+6281234500009", ONLY_BSUID, "Rina")]
    with pytest.raises(ValueError, match="neither a phone nor a bsuid"):
        load({"contacts": [contact(name="Nobody", username="nobody")]})
    with pytest.raises(ValueError, match="neither a phone nor a bsuid"):
        copy_contacts(db, [contact(phone=None, notes=[], conversation=None)])
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 3, "nothing written"


def test_rows_convex_cannot_hold_are_reported_one_by_one_and_the_rest_is_copied(cli, db, convex, tmp_path):
    """A 2 MB note and a NULL inside tags are fine in PostgreSQL, not in a Convex document: each such row is
    named (masked), the rest of its batch is copied, and the run fails its verification instead of refusing
    the batch on every rerun."""
    seed_postgres(db, 30)
    big, nulls = db.execute("SELECT id, phone FROM contacts WHERE phone IS NOT NULL ORDER BY id LIMIT 2").fetchall()
    db.execute("INSERT INTO contact_notes (workspace_id, contact_id, content) "
               "SELECT workspace_id, id, repeat('x', 2000000) FROM contacts WHERE id = %s", (big[0],))
    db.execute("UPDATE contacts SET tags = ARRAY['vip', NULL] WHERE id = %s", (nulls[0],))
    state = str(tmp_path / "s.json")
    result = cli.invoke(args=["sync-convex", "--batch", "10", "--samples", "0", "--state", state])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("refused ")]
    assert len(lines) == 2, result.output
    assert any(line.startswith("refused note ") and "too_large" in line for line in lines), lines
    assert any(line.startswith("refused contact ") and "invalid" in line for line in lines), lines
    assert big[1] not in result.output and nulls[1] not in result.output  # masked
    assert "synced 30 contacts" in result.output and "not copied" in result.output
    # Everything else is there: the contact with the big note is, without that note.
    wanted = db.execute("SELECT count(*) FROM contacts").fetchone()[0] - 1
    workspaces = [w for (w,) in db.execute("SELECT id::text FROM workspaces").fetchall()]
    assert sum(convex.counts(w)["contacts"] for w in workspaces) == wanted
