"""seed, compare and log-summary end to end on PostgreSQL, the stand-in and gunicorn."""

from __future__ import annotations

import json
import re

import pytest

from commands.compare import synthetic
from commands.compare.probes import sample_probes
from services.identity import is_valid_bsuid

SEED, CONTACTS = 99, 60


def data_digest(db) -> str:
    """Everything but generated ids, in a stable order."""
    return db.execute(
        """SELECT md5(string_agg(row_text, '|' ORDER BY row_text)) FROM (
             SELECT concat_ws(',', c.workspace_id, c.phone, c.bsuid, c.username, c.name, c.kapso_name, c.email,
                              c.lead_status,
                              c.lead_score, c.tags::text, c.created_at,
                              (SELECT string_agg(n.content || n.created_at, ';' ORDER BY n.id) FROM contact_notes n
                               WHERE n.contact_id = c.id),
                              (SELECT string_agg(m.content || m.created_at || m.kapso_message_id, ';' ORDER BY m.id)
                               FROM messages m JOIN conversations v ON v.id = m.conversation_id
                               WHERE v.contact_id = c.id)) AS row_text
             FROM contacts c) AS t""").fetchone()[0]


@pytest.fixture()
def cli(make_app):
    return make_app().test_cli_runner()


@pytest.fixture()
def seeded(cli, db, convex):
    result = cli.invoke(args=["seed", "--seed", str(SEED), "--contacts", str(CONTACTS), "--reset"])
    assert result.exit_code == 0, result.output
    return result


def test_seed_loads_both_backends_deterministically(cli, db, seeded):
    assert "PostgreSQL:" in seeded.output and "Convex:" in seeded.output and "rows/s" in seeded.output
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == CONTACTS
    first = data_digest(db)
    again = cli.invoke(args=["seed", "--seed", str(SEED), "--contacts", str(CONTACTS), "--backend", "postgres"])
    assert again.exit_code == 0, again.output
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == CONTACTS
    assert data_digest(db) == first
    assert db.execute("SELECT count(*) FROM workspaces").fetchone()[0] == synthetic.WORKSPACE_COUNT


def test_seed_makes_every_tenth_contact_username_only_in_both_backends(db, seeded, client, auth):
    rows = db.execute("SELECT workspace_id::text, bsuid, username, name, kapso_name FROM contacts "
                      "WHERE phone IS NULL ORDER BY bsuid").fetchall()
    ids = synthetic.workspace_ids(SEED)
    heads = [synthetic.contact_head(SEED, i, ids) for i in range(CONTACTS) if synthetic.is_username_only(i)]
    assert len(rows) == len(heads) == CONTACTS // synthetic.USERNAME_ONLY_EVERY
    assert [(ws, bsuid) for ws, bsuid, *_ in rows] == sorted([(h.workspace_id, h.bsuid) for h in heads],
                                                              key=lambda pair: pair[1])
    assert all(is_valid_bsuid(bsuid) and username for _, bsuid, username, *_ in rows)
    assert db.execute("SELECT count(*) FROM contacts WHERE phone IS NOT NULL AND bsuid IS NULL").fetchone()[0] == (
        CONTACTS - len(rows)), "the others are phone contacts, as before"
    for ws, bsuid, username, name, kapso_name in rows:
        params = {"bsuid": bsuid, "workspace_id": ws}
        a = client.get("/api/contacts/by-phone", query_string=params, headers=auth)
        b = client.get("/api/contacts/by-phone-convex", query_string=params, headers=auth)
        assert a.status_code == 200 and a.get_json() == b.get_json()
        assert a.get_json()["contact"]["name"] == (name or kapso_name or username)
    assert any(name is None and kapso_name is None for *_, name, kapso_name in rows), "a name from the username"


def test_compare_passes_parity_and_log_summary_agrees(cli, gunicorn, seeded, tmp_path):
    labels = {p.label for p in sample_probes(SEED, CONTACTS, 8)}
    assert {"found/bsuid", "not found/other workspace (bsuid)", "not found/unknown bsuid"} <= labels
    server = gunicorn()
    out = tmp_path / "report"
    result = cli.invoke(args=["compare", "--url", server.url, "--seed", str(SEED), "--contacts", str(CONTACTS),
                              "--samples", "8", "--requests", "120", "--warmup", "10", "--concurrency", "2",
                              "--json", str(out / "c.json"), "--markdown", str(out / "c.md"),
                              "--chart", str(out / "c.png")])
    assert result.exit_code == 0, result.output
    assert "parity: PASS" in result.output and "/api/contacts/by-phone-convex" in result.output
    report = json.loads((out / "c.json").read_text())
    assert report["routes"]["supabase"]["client_ms"]["count"] == 120
    assert report["routes"]["convex"]["errors"] == 0
    assert (out / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| /api/contacts/by-phone |" in (out / "c.md").read_text()

    server.stop()  # every line written: no sleep before reading gunicorn's log
    log = tmp_path / "gunicorn.log"
    log.write_text(server.log_path.read_text() + "\nTraceback (most recent call last):\n  nonsense\n\n")
    summary_json = tmp_path / "summary.json"
    summary = cli.invoke(args=["log-summary", "--request-id", report["request_id_prefix"], "--json",
                               str(summary_json), str(log)])
    assert summary.exit_code == 0, summary.output
    rows = {row["backend"]: row for row in json.loads(summary_json.read_text())}
    for backend in ("supabase", "convex"):
        from_log, from_compare = rows[backend], report["routes"][backend]
        assert from_log["status"] == "2xx"
        assert from_log["total_ms"] == from_compare["server_app_ms"]
        assert from_log["backend_ms"] == from_compare["server_backend_ms"]


def test_compare_reports_an_altered_contact_and_fails(cli, db, gunicorn, seeded, tmp_path):
    server = gunicorn()
    db.execute("UPDATE contact_notes SET content = content || ' (edited in PostgreSQL)'")
    result = cli.invoke(args=["compare", "--url", server.url, "--seed", str(SEED), "--contacts", str(CONTACTS),
                              "--samples", "5", "--requests", "10", "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 1
    assert "PARITY FAILED" in result.output
    assert re.search(r'^-\s+".* \(edited in PostgreSQL\)",?$', result.output, re.M), result.output
    assert not (tmp_path / "c.json").exists(), "no verdict, no report"
