"""db check / upgrade / import-legacy on a messy database shaped like the original CRM."""

from __future__ import annotations

import json

import psycopg
import pytest

from commands.db.legacy_values import MAX_TEXT_BYTES
from helpers import API_KEY, load_contract
from services.postgres import migrations
from tools.servers import GunicornServer

W1 = "00000000-0000-4000-8000-0000000000a1"
W2 = "00000000-0000-4000-8000-0000000000a2"
# Source ids, so the test can name them.
BUDI_OLD, BUDI_NEW, SITI, BAD, ANDI, BUDI_W2, WA = (f"10000000-0000-4000-8000-00000000000{n}" for n in range(1, 8))

LEGACY_SCHEMA = """
CREATE TABLE workspaces (id uuid PRIMARY KEY, name text NOT NULL, kapso_phone_id text);
CREATE TABLE contacts (id uuid PRIMARY KEY, workspace_id uuid REFERENCES workspaces, phone text,
    phone_normalized text, name text, kapso_name text, lead_status text, lead_score int, tags text[],
    created_at timestamptz);
CREATE TABLE contact_notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), contact_id uuid REFERENCES contacts,
    content text, created_at timestamptz);
CREATE TABLE conversations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), workspace_id uuid,
    contact_id uuid REFERENCES contacts, status text, unread_count int, last_message_at timestamptz,
    created_at timestamptz);
CREATE TABLE messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), conversation_id uuid REFERENCES conversations,
    direction text, content text, message_type text, kapso_message_id text, created_at timestamptz);
"""

CONTACTS = [  # id, workspace, phone, phone_normalized, name, kapso_name, status, score, tags, created_at
    (BUDI_OLD, W1, "6281234567890", None, "Budi", "Budi S", "warm", 80, ["vip"], "2025-03-01T10:00:00Z"),
    (BUDI_NEW, W1, "081234567890", None, "Budi Santoso", None, "hot", 40, ["jakarta", "vip"],
     "2025-06-01T10:00:00Z"),
    (SITI, W1, "6281311112222", "+6281311112222", "Siti", None, None, None, None, None),
    (BAD, W1, "0000", None, "Nobody", None, "new", 0, [], "2025-01-01T00:00:00Z"),
    (ANDI, W1, "0857-1234-5678", None, None, "Andi K", "new", 5, None, None),
    (BUDI_W2, W2, "+62 812-3456-7890", None, "Budi (other workspace)", None, "cold", 10, [],
     "2025-02-01T00:00:00Z"),
    (WA, W1, "447700900123", None, "Wendy", None, "new", 0, ["uk"], "2025-05-05T05:05:05.123456Z"),
]
NOTES = [  # contact, content, created_at
    (BUDI_OLD, "Asked about study options", "2025-03-01T11:00:00Z"),
    (BUDI_NEW, "Wants a UK master's", "2025-06-02T09:00:00Z"),
    (BUDI_OLD, "Visa appointment booked", "2025-07-01T09:00:00Z"),
    (SITI, "Prefers WhatsApp", None),
    (BAD, "Orphan of an invalid phone", "2025-01-02T00:00:00Z"),
]
CONVERSATIONS = [  # id, contact, status, unread, last_message_at, created_at
    ("20000000-0000-4000-8000-000000000001", BUDI_OLD, "closed", 0, "2025-03-02T10:00:00Z", "2025-03-01T10:00:00Z"),
    ("20000000-0000-4000-8000-000000000002", BUDI_NEW, "open", 2, "2025-07-03T10:00:00Z", "2025-06-01T10:00:00Z"),
    ("20000000-0000-4000-8000-000000000003", SITI, "open", 1, "2025-04-01T08:00:00Z", "2025-04-01T07:00:00Z"),
    ("20000000-0000-4000-8000-000000000004", SITI, "closed", 0, None, None),
    ("20000000-0000-4000-8000-000000000005", SITI, "open", 0, "2025-04-10T08:00:00Z", "2025-04-09T07:00:00Z"),
    ("20000000-0000-4000-8000-000000000006", BAD, "open", 0, "2025-01-03T00:00:00Z", "2025-01-03T00:00:00Z"),
]
MESSAGES = [  # conversation (last digit), direction, content, kapso id, created_at
    (1, "inbound", "Halo, info kuliah di Australia?", "wamid.b1", "2025-03-02T10:00:00Z"),
    (2, "inbound", "Mau tanya visa untuk UK", "wamid.b2", "2025-07-03T10:00:00Z"),
    (2, "outbound", "Baik kak", None, "2025-07-03T10:05:00Z"),
    (3, "inbound", "Ada beasiswa ke Kanada?", "wamid.s1", "2025-04-01T08:00:00Z"),
    (4, "incoming", "Minimal IELTS berapa?", None, None),
    (5, "inbound", "Terima kasih", "wamid.s3", "2025-04-10T08:00:00Z"),
    (6, "inbound", "never imported", "wamid.x", "2025-01-03T00:00:00Z"),
]


def build_legacy(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LEGACY_SCHEMA)
        conn.execute("INSERT INTO workspaces VALUES (%s, 'Agency', 'kapso-1'), (%s, 'Other', NULL)", (W1, W2))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO contacts VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", CONTACTS)
            cur.executemany("INSERT INTO contact_notes (contact_id, content, created_at) VALUES (%s, %s, %s)", NOTES)
            cur.executemany("INSERT INTO conversations (id, workspace_id, contact_id, status, unread_count, "
                            "last_message_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            [(c[0], W1, *c[1:]) for c in CONVERSATIONS])
            cur.executemany("INSERT INTO messages (conversation_id, direction, content, message_type, "
                            "kapso_message_id, created_at) VALUES (%s, %s, %s, 'text', %s, %s)",
                            [(f"20000000-0000-4000-8000-00000000000{m[0]}", *m[1:]) for m in MESSAGES])


@pytest.fixture()
def legacy(new_database) -> str:
    url = new_database("legacy_crm")
    build_legacy(url)
    return url


@pytest.fixture()
def target(new_database, make_app):
    url = new_database("kontak_target")
    return url, make_app(DATABASE_URL=url, CONVEX_SITE_URL=None)


def lookup(client, workspace: str, phone: str) -> dict:
    response = client.get("/api/contacts/by-phone", query_string={"phone": phone, "workspace_id": workspace},
                          headers={"x-api-key": API_KEY})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def snapshot(url: str) -> list:
    with psycopg.connect(url) as conn:
        return [conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                             f"FROM {table} t").fetchone()
                for table in ("workspaces", "contacts", "conversations", "contact_notes", "messages")]


def test_check_then_upgrade_then_import_then_every_valid_contact_is_found(legacy, target):
    url, app = target
    cli = app.test_cli_runner()
    before = snapshot(legacy)

    check = cli.invoke(args=["db", "check"])
    assert check.exit_code == 1
    for table in ("workspaces", "contacts", "conversations", "messages", "contact_notes"):
        assert f"MISSING  missing table {table}" in check.output
    labels = [m.label for m in migrations.available()]
    assert f"{len(labels)} pending migration(s): {', '.join(labels)}" in check.output

    upgrade = cli.invoke(args=["db", "upgrade"])
    assert upgrade.exit_code == 0, upgrade.output
    assert "applied 0003_legacy_key_indexes" in upgrade.output

    first = cli.invoke(args=["db", "import-legacy", "--source", legacy])
    assert first.exit_code == 0, first.output
    out = first.output
    assert "rejected (phone did not normalise, or no workspace): 1" in out
    assert f"contact {BAD} (workspace {W1}): phone '****' (4 chars) does not normalise" in out
    assert "merged contacts (same number after normalisation): 1" in out
    assert f"{W1}: +62812****890 <- 2 source contacts ({BUDI_OLD}, {BUDI_NEW})" in out
    assert "merged conversations (several for one contact): 2" in out
    assert f"{W1}: +62813****222 <- 3 conversations" in out
    assert "6281234567890" not in out and "6281311112222" not in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()[:1] and
            line.split()[0] in ("workspaces", "contacts", "conversations", "contact_notes", "messages")}
    assert rows["contacts"] == ["7", "5", "0", "1"]  # read, inserted, updated, skipped (the bad phone)
    assert rows["conversations"] == ["6", "2", "0", "1"]
    assert rows["contact_notes"] == ["5", "4", "0", "1"]
    assert rows["messages"] == ["7", "6", "0", "1"]

    assert cli.invoke(args=["db", "check"]).exit_code == 0
    client = app.test_client()
    budi = lookup(client, W1, "+62 812-3456-7890")
    assert budi == {"found": True,
                    "contact": {"name": "Budi Santoso", "lead_status": "hot", "lead_score": 80,
                                "tags": ["jakarta", "vip"], "is_returning": True,
                                "first_contact_date": "2025-03-01T10:00:00.000Z"},
                    "notes": ["Visa appointment booked", "Wants a UK master's", "Asked about study options"],
                    "conversation_summary": budi["conversation_summary"],
                    "last_interaction": "2025-07-03T10:05:00.000Z"}
    assert "UK" in budi["conversation_summary"] and "Visa" in budi["conversation_summary"]
    assert "Australia" in budi["conversation_summary"]
    siti = lookup(client, W1, "081311112222")
    # Null created_at: the earliest time known about her (her first conversation); the lone
    # note without a time takes that too.
    assert siti["contact"]["first_contact_date"] == "2025-04-01T07:00:00.000Z"
    assert siti["contact"]["lead_status"] == "new" and siti["contact"]["tags"] == []
    assert siti["notes"] == ["Prefers WhatsApp"]
    assert siti["last_interaction"] == "2025-04-10T08:00:00.000Z"
    assert siti["conversation_summary"] == "Discussed: Canada, Scholarship, English test"
    andi = lookup(client, W1, "6285712345678")
    assert andi["contact"]["name"] == "Andi K" and andi["contact"]["first_contact_date"] is not None
    assert andi["last_interaction"] is None and andi["notes"] == []
    assert lookup(client, W2, "081234567890")["contact"]["name"] == "Budi (other workspace)"
    assert lookup(client, W1, "+447700900123")["contact"]["first_contact_date"] == "2025-05-05T05:05:05.123Z"

    imported = snapshot(url)
    second = cli.invoke(args=["db", "import-legacy", "--source", legacy])
    assert second.exit_code == 0, second.output
    assert "nothing new" in second.output
    assert snapshot(url) == imported
    assert snapshot(legacy) == before, "the source is never written"


def test_import_refuses_a_target_behind_and_a_source_without_contacts(legacy, target, new_database):
    url, app = target
    cli = app.test_cli_runner()
    behind = cli.invoke(args=["db", "import-legacy", "--source", legacy])
    assert behind.exit_code == 1 and "run `flask --app app db upgrade` first" in behind.output
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    empty = new_database("not_a_crm")
    refused = cli.invoke(args=["db", "import-legacy", "--source", empty])
    assert refused.exit_code == 1 and "source has no table public.workspaces; nothing was written" in refused.output


def test_imported_data_synced_to_convex_then_compare_from_db_passes_parity(legacy, target, standin, convex,
                                                                           make_app, tmp_path):
    url, app = target
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    assert cli.invoke(args=["db", "import-legacy", "--source", legacy]).exit_code == 0
    env = {"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    result = make_app(**env).test_cli_runner().invoke(args=["sync-convex", "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "lookups: 5 of 5 equal on both routes" in result.output
    server = GunicornServer(env, tmp_path / "gunicorn.log")
    try:
        out = tmp_path / "report"
        compare = make_app(**env).test_cli_runner().invoke(args=[
            "compare", "--url", server.url, "--probes-from-db", "200", "--requests", "60", "--warmup", "5",
            "--concurrency", "2", "--json", str(out / "c.json"), "--markdown", str(out / "c.md"),
            "--chart", str(out / "c.png")])
    finally:
        server.stop()
    assert compare.exit_code == 0, compare.output
    assert "parity: PASS" in compare.output
    report = json.loads((out / "c.json").read_text())
    assert report["probes_from"] == "postgres" and report["parity"]["checked"] >= 5 * 4
    assert report["routes"]["convex"]["errors"] == 0 and (out / "c.png").exists()


def test_import_keeps_the_identity_webhooks_gave_and_contacts_known_by_bsuid_alone(legacy, target):
    """The legacy CRM has no BSUID: a contact already linked to one (docs/webhook.md §7.4) keeps it and takes the
    CRM's fields; a contact known by its BSUID alone is left as it is (a later delivery carrying both merges)."""
    url, app = target
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    linked, alone = "ID.13491208655302741918", "ID.99887766554433221100"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO workspaces (id, name) VALUES (%s, 'Agency')", (W1,))
        conn.execute("INSERT INTO contacts (workspace_id, phone, bsuid, parent_bsuid, username, kapso_name) VALUES "
                     "(%s, '+6281311112222', %s, 'ID.ENT.5566', 'siti.wa', 'Siti WA'), "
                     "(%s, NULL, %s, NULL, 'only.username', NULL)", (W1, linked, W1, alone))
    first = cli.invoke(args=["db", "import-legacy", "--source", legacy])
    assert first.exit_code == 0, first.output
    rows = {line.split()[0]: line.split()[1:] for line in first.output.splitlines() if line.startswith("contacts ")}
    assert rows["contacts"] == ["7", "4", "1", "1"]  # Siti updated in place, not inserted again
    client = app.test_client()
    by_bsuid = client.get("/api/contacts/by-phone", query_string={"bsuid": linked, "workspace_id": W1},
                          headers={"x-api-key": API_KEY}).get_json()
    assert by_bsuid == lookup(client, W1, "081311112222")
    assert by_bsuid["contact"]["name"] == "Siti" and by_bsuid["notes"] == ["Prefers WhatsApp"]
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT phone, bsuid, parent_bsuid, username, kapso_name FROM contacts "
                            "WHERE bsuid IS NOT NULL ORDER BY bsuid").fetchall()
    assert kept == [("+6281311112222", linked, "ID.ENT.5566", "siti.wa", "Siti WA"),
                    (None, alone, None, "only.username", None)]
    assert cli.invoke(args=["db", "check"]).exit_code == 0
    again = cli.invoke(args=["db", "import-legacy", "--source", legacy])
    assert again.exit_code == 0 and "nothing new" in again.output


# --- what the CRM kept loosely ------------------------------------------------------------------------------------

LOOSE_SCHEMA = """
CREATE TABLE workspaces (id uuid PRIMARY KEY, name text, kapso_phone_id text);
CREATE TABLE contacts (id int PRIMARY KEY, workspace_id uuid, phone text, name text, lead_score text, tags text,
    created_at timestamp);
CREATE TABLE contact_notes (id int PRIMARY KEY, contact_id int, content text, created_at date);
CREATE TABLE conversations (id int PRIMARY KEY, contact_id int, unread_count text, last_message_at timestamp,
    last_message_preview text);
CREATE TABLE messages (id int PRIMARY KEY, conversation_id int, direction text, content text, created_at timestamp);
"""


def build_loose(url: str, tags_type: str = "text") -> None:
    """A CRM with integer ids, a workspace without a name, text scores and tags, times without a time zone."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LOOSE_SCHEMA.replace("tags text", f"tags {tags_type}"))
        conn.execute("INSERT INTO workspaces VALUES (%s, NULL, 'kapso-loose'), (%s, 'Other', NULL)", (W1, W2))


def loose_contacts(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """(id, workspace, phone, name, lead_score, tags): created 2025-03-01 10:00 without a time zone (UTC)."""
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO contacts VALUES (%s, %s, %s, %s, %s, %s, '2025-03-01 10:00')", rows)


def report_section(output: str, title: str) -> list[str]:
    """The lines listed under `title: N` in an import report."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    count = int(lines[start].rsplit(": ", 1)[1])
    return [line.strip() for line in lines[start + 1:start + 1 + count]]


def test_text_tags_text_scores_integer_ids_and_a_nameless_workspace_are_read_and_listed(new_database, target):
    source = new_database("legacy_loose")
    build_loose(source)
    with psycopg.connect(source, autocommit=True) as conn:
        loose_contacts(conn, [(1, W1, "081234567890", "Budi", "80", " vip, jakarta ,,vip"),
                              (2, W1, "081311112222", "Siti", "hot", '{vip,"jakarta barat",NULL}'),
                              (3, W2, "081299998888", "Andi", "45.6", "{}")])
        conn.execute("INSERT INTO contact_notes VALUES (1, 1, 'Asked about visas', '2025-03-02')")
        conn.execute("INSERT INTO conversations VALUES (1, 2, 'two', '2025-04-01 08:00', 'Ada beasiswa?')")
        conn.execute("INSERT INTO messages VALUES (1, 1, 'in', 'Ada beasiswa ke Kanada?', '2025-04-01 08:00')")
    url, app = target
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    result = cli.invoke(args=["db", "import-legacy", "--source", source])
    assert result.exit_code == 0, result.output
    assert report_section(result.output, "adjusted") == [
        f"workspace {W1}: no name in the source; its id stored as name",
        f"contact 2 (workspace {W1}): 1 NULL tag(s) dropped",
        f"contact 2 (workspace {W1}): lead_score 'hot' is not a number: 0 stored"]
    client = app.test_client()
    budi, siti = lookup(client, W1, "081234567890"), lookup(client, W1, "081311112222")
    assert budi["contact"]["tags"] == ["vip", "jakarta"] and budi["contact"]["lead_score"] == 80
    assert budi["contact"]["first_contact_date"] == "2025-03-01T10:00:00.000Z", "no time zone: read as UTC"
    assert budi["notes"] == ["Asked about visas"]
    assert siti["contact"]["tags"] == ["vip", "jakarta barat"] and siti["contact"]["lead_score"] == 0
    assert siti["last_interaction"] == "2025-04-01T08:00:00.000Z" and siti["conversation_summary"] != "General inquiry"
    andi = lookup(client, W2, "081299998888")
    assert andi["contact"]["tags"] == [] and andi["contact"]["lead_score"] == 46
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT name FROM workspaces WHERE id = %s", (W1,)).fetchone() == (W1,)
        assert conn.execute("SELECT unread_count FROM conversations").fetchone() == (0,)
    again = cli.invoke(args=["db", "import-legacy", "--source", source])
    assert again.exit_code == 0 and "nothing new" in again.output


def test_null_tags_and_texts_over_what_convex_holds_are_listed_and_the_rest_copies_to_convex(
        new_database, target, standin, convex, make_app, tmp_path):
    assert MAX_TEXT_BYTES == load_contract("limits.json")["max_text_bytes"], "the contract's number"
    source = new_database("legacy_large")
    build_loose(source, tags_type="text[]")
    over = MAX_TEXT_BYTES + 1
    with psycopg.connect(source, autocommit=True) as conn:
        loose_contacts(conn, [(1, W1, "081234567890", "Budi", 10, ["vip", None])])
        conn.execute("INSERT INTO contact_notes VALUES (1, 1, %s, '2025-03-02'), (2, 1, 'kept', '2025-03-03')",
                     ("n" * 2_000_000,))
        conn.execute("INSERT INTO conversations VALUES (1, 1, 0, '2025-04-01 08:00', %s)", ("é" * over,))
        conn.execute("INSERT INTO messages VALUES (1, 1, 'in', %s, '2025-04-01 08:00'), "
                     "(2, 1, 'out', 'Baik kak', '2025-04-01 08:01')", ("m" * over,))
    url, app = target
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    result = cli.invoke(args=["db", "import-legacy", "--source", source])
    assert result.exit_code == 0, result.output
    assert report_section(result.output, "too large for Convex") == [
        f"note 1 (workspace {W1}, +62812****890): content of 2,000,000 bytes",
        f"message 1 (workspace {W1}, +62812****890): content of {over:,} bytes"]
    assert report_section(result.output, "adjusted") == [
        f"workspace {W1}: no name in the source; its id stored as name",
        f"contact 1 (workspace {W1}): 1 NULL tag(s) dropped",
        f"conversation 1 (workspace {W1}, +62812****890): preview of {2 * over:,} bytes over max_text_bytes "
        f"({MAX_TEXT_BYTES:,}) not stored"]
    budi = lookup(app.test_client(), W1, "081234567890")
    assert budi["contact"]["tags"] == ["vip"] and budi["notes"] == ["kept"]
    env = {"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    synced = make_app(**env).test_cli_runner().invoke(args=["sync-convex", "--state", str(tmp_path / "s.json")])
    assert synced.exit_code == 0 and "verification: PASS" in synced.output, synced.output


def test_a_null_inside_stored_tags_never_reaches_the_answer(target):
    """A contact an older import (or a hand edit) left with `{vip,NULL}`: the answer's tags are strings only
    (contract/openapi.json), found by phone and by BSUID alike."""
    url, app = target
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO workspaces (id, name) VALUES (%s, 'Agency')", (W1,))
        conn.execute("INSERT INTO contacts (workspace_id, phone, bsuid, tags) VALUES "
                     "(%s, '+6281234567890', 'ID.1234567', '{vip,NULL,jakarta,NULL}')", (W1,))
    client = app.test_client()
    assert lookup(client, W1, "081234567890")["contact"]["tags"] == ["vip", "jakarta"]
    by_bsuid = client.get("/api/contacts/by-phone", query_string={"bsuid": "ID.1234567", "workspace_id": W1},
                          headers={"x-api-key": API_KEY}).get_json()
    assert by_bsuid["contact"]["tags"] == ["vip", "jakarta"]


@pytest.mark.parametrize(("schema", "line"), [
    ("CREATE TABLE workspaces (id int PRIMARY KEY, name text)",
     "source column public.workspaces.id is integer: Kontak needs UUIDs, the workspace_id callers send"),
    ("CREATE TABLE workspaces (id uuid PRIMARY KEY, name text, created_at text)",
     "source column public.workspaces.created_at is text: Kontak needs times"),
])
def test_a_source_column_kontak_cannot_read_is_one_line_before_anything_is_written(new_database, target, schema,
                                                                                    line):
    source = new_database("legacy_typed")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(LOOSE_SCHEMA.replace(
            "CREATE TABLE workspaces (id uuid PRIMARY KEY, name text, kapso_phone_id text)", schema))
    url, app = target
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    result = cli.invoke(args=["db", "import-legacy", "--source", source])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith(f"Error: {line}") and result.output.endswith("; nothing was written\n")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(("source", "line"), [
    ("nonsense", 'Error: --source: not a valid PostgreSQL connection string: missing "=" after "nonsense"'),
    ("postgresql://crm:s3cret@[::1:5432/crm", "Error: --source: not a valid PostgreSQL connection string: end of "
                                              "string reached when looking for matching \"]\""),
    ("postgresql://crm@127.0.0.1:notaport/crm", "Error: --source: port 'notaport' is not a number from 1 to 65535"),
    (b"postgresql://crm@127.0.0.1/crm\xff".decode("utf-8", "surrogateescape"), "Error: --source: not valid UTF-8"),
])
def test_a_garbage_source_is_one_line(target, source, line):
    url, app = target
    result = app.test_cli_runner().invoke(args=["db", "import-legacy", "--source", source])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith(line) and result.output.count("\n") == 1 and "s3cret" not in result.output


def test_a_source_schema_that_is_not_utf8_is_one_line(target, legacy):
    url, app = target
    schema = b"crm\xff".decode("utf-8", "surrogateescape")  # what Python makes of such bytes in argv
    result = app.test_cli_runner().invoke(args=["db", "import-legacy", "--source", legacy, "--source-schema", schema])
    assert result.exit_code == 1 and result.output == "Error: --source-schema: not valid UTF-8\n"


def sql_ascii_database(new_database, name: str) -> str:
    """A database whose encoding is SQL_ASCII (it stores whatever bytes it is given), dropped at teardown."""
    url = new_database(name)
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                     "TEMPLATE template0")
    return url


def test_a_sql_ascii_source_is_read_as_utf8_and_bytes_that_are_not_say_so(new_database, target):
    source = sql_ascii_database(new_database, "legacy_ascii")
    build_legacy(source)
    with psycopg.connect(source, autocommit=True) as conn:
        # UTF-8 bytes, stored unchecked: what a SQL_ASCII database of a UTF-8 application holds.
        conn.execute("UPDATE contacts SET name = convert_from('\\x42c3a96e6f'::bytea, 'SQL_ASCII') WHERE id = %s",
                     (SITI,))
    url, app = target
    cli = app.test_cli_runner()
    assert cli.invoke(args=["db", "upgrade"]).exit_code == 0
    result = cli.invoke(args=["db", "import-legacy", "--source", source])
    assert result.exit_code == 0, result.output
    assert lookup(app.test_client(), W1, "081311112222")["contact"]["name"] == "Béno"
    with psycopg.connect(source, autocommit=True) as conn:  # one Latin-1 byte: no UTF-8 reading of it exists
        conn.execute("UPDATE contact_notes SET content = convert_from('\\x6361668e'::bytea, 'SQL_ASCII') "
                     "WHERE content = 'Prefers WhatsApp'")
    refused = cli.invoke(args=["db", "import-legacy", "--source", source])
    assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit)
    error = refused.output.splitlines()[-1]  # after the progress bar's line
    assert error.startswith('Error: source table public.contact_notes: invalid byte sequence for encoding "UTF8": '
                            "0x8e (the source database is SQL_ASCII") and error.endswith("nothing was written")
