"""Versioned migrations, db check, DATABASE_SCHEMA, and the service's answer while the schema is behind."""

from __future__ import annotations

import logging
import threading

import psycopg
import pytest

from helpers import API_KEY, DEMO_NAME, OTHER_WORKSPACE, WORKSPACE, load_contract
from services.config import ConfigError, load_settings
from services.postgres import migrations
from services.postgres.dataset import load_dataset
from services.readiness import postgres_state

TABLES = ("workspaces", "contacts", "conversations", "messages", "contact_notes")
DEMO_PHONE = "+6281234567890"


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def at_version_one(url: str, record: bool = True) -> dict[str, int]:
    """A database as Kontak left it before migrations 0002+ (with or without the version table), with data."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migrations.available()[0].path.read_text(), prepare=False)
        if record:
            conn.execute("CREATE TABLE kontak_schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            conn.execute("INSERT INTO kontak_schema_migrations (version, name) VALUES (1, 'initial')")
        load_dataset(conn, load_contract("demo_data.json"))
        return counts(conn)


@pytest.fixture()
def cli(make_app):
    """`cli(url, *args, **env)`: `flask db *args` on the database at `url`."""
    def run(url: str, *args: str, **env: str):
        app = make_app(DATABASE_URL=url, CONVEX_SITE_URL=None, **env)
        return app.test_cli_runner().invoke(args=["db", *args])
    return run


def lookup(app, phone: str = DEMO_PHONE):
    return app.test_client().get("/api/contacts/by-phone", query_string={"phone": phone, "workspace_id": WORKSPACE},
                                 headers={"x-api-key": API_KEY})


@pytest.mark.parametrize("recorded", [True, False], ids=["at-0001", "before-migrations"])
def test_upgrade_of_an_older_database_with_data_keeps_every_row(new_database, recorded, cli):
    url = new_database("older")
    before = at_version_one(url, record=recorded)
    behind = cli(url, "check")
    assert behind.exit_code == 1
    labels = [m.label for m in migrations.available()]
    pending = (f"{len(labels) - 1} pending migration(s): 0002_legacy_keys" if recorded
               else f"{len(labels)} pending migration(s): 0001_initial")
    assert pending in behind.output
    assert "missing column messages.legacy_id" in behind.output
    result = cli(url, "upgrade")
    assert result.exit_code == 0, result.output
    assert "applied 0003_legacy_key_indexes" in result.output
    with psycopg.connect(url) as conn:
        assert counts(conn) == before
        versions = [r[0] for r in conn.execute("SELECT version FROM kontak_schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in migrations.available()]
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
        assert invalid == 0
    assert cli(url, "check").exit_code == 0
    again = cli(url, "upgrade")
    assert again.exit_code == 0 and "(0 applied" in again.output


def test_check_names_a_missing_index_and_a_missing_constraint(new_database, cli):
    url = new_database("damaged")
    assert cli(url, "upgrade").exit_code == 0
    ok = cli(url, "check", "-v")
    assert ok.exit_code == 0 and "ok       index messages(conversation_id, created_at DESC, id DESC)" in ok.output
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX messages_conversation_newest")
        conn.execute("ALTER TABLE contacts DROP CONSTRAINT contacts_workspace_id_phone_key")
        conn.execute("ALTER TABLE contact_notes DROP CONSTRAINT contact_notes_contact_id_fkey")
        conn.execute("ALTER TABLE contacts ALTER COLUMN lead_score TYPE bigint")
        conn.execute("INSERT INTO workspaces (id, name) VALUES (%s, 'w')", (WORKSPACE,))
        conn.execute("INSERT INTO contacts (workspace_id, phone) VALUES (%s, '6281234567890')", (WORKSPACE,))
    result = cli(url, "check")
    assert result.exit_code == 1
    assert "MISSING  missing index messages(conversation_id, created_at DESC, id DESC)" in result.output
    assert "MISSING  missing unique constraint contacts(workspace_id, phone)" in result.output
    assert "MISSING  missing foreign key contact_notes.contact_id -> contacts(id)" in result.output
    assert "WRONG    wrong type contacts.lead_score: bigint, expected integer" in result.output
    assert "WRONG    1 contacts.phone not in E.164 (e.g. 628****890 (13 chars)" in result.output
    assert "5 problem(s)" in result.output


def test_a_service_on_a_database_behind_answers_503_and_says_why_once(new_database, caplog, cli, make_app):
    url = new_database("behind")
    at_version_one(url)
    app = make_app(DATABASE_URL=url, CONVEX_SITE_URL=None)
    with caplog.at_level(logging.ERROR, logger="kontak"):
        answers = [lookup(app) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert answers[0].get_json() == {"error": "Backend unavailable"}
    lines = [r.getMessage() for r in caplog.records if "schema behind" in r.getMessage()]
    behind = [m.label for m in migrations.available()][1:]
    assert lines == [f"database schema behind: {len(behind)} migration(s) pending ({', '.join(behind)}); "
                     "run `flask --app app db upgrade`"]
    with app.app_context():
        assert postgres_state(app.extensions["kontak.db"]) == "schema behind"

    assert cli(url, "upgrade").exit_code == 0
    fresh = make_app(DATABASE_URL=url, CONVEX_SITE_URL=None)
    assert lookup(fresh).get_json()["found"] is True
    assert postgres_state(fresh.extensions["kontak.db"]) == "ok"


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_database_schema_keeps_kontak_beside_another_applications_tables(new_database, mode, cli, make_app):
    url = new_database(f"shared_{mode}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.contacts (id serial PRIMARY KEY, email text)")
        conn.execute("INSERT INTO public.contacts (email) VALUES ('their-row@example.com')")
    env = {"DATABASE_SCHEMA": "kontak", "DATABASE_POOL_MODE": mode}
    assert cli(url, "upgrade", **env).exit_code == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET search_path TO kontak")
        load_dataset(conn, load_contract("demo_data.json"))
        assert conn.execute("SELECT email FROM public.contacts").fetchall() == [("their-row@example.com",)]
    assert cli(url, "check", **env).exit_code == 0
    app = make_app(DATABASE_URL=url, CONVEX_SITE_URL=None, **env)
    assert lookup(app).get_json()["contact"]["name"] == DEMO_NAME


def test_database_schema_must_be_a_plain_identifier():
    with pytest.raises(ConfigError, match="^DATABASE_SCHEMA must be a plain lower-case identifier"):
        load_settings({"DATABASE_SCHEMA": "kontak; DROP TABLE x"})
    assert load_settings({})["DATABASE_SCHEMA"] == "public"


def test_two_upgrades_at_once_apply_each_migration_once(new_database):
    url = new_database("racing")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                migrations.upgrade(conn)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM kontak_schema_migrations").fetchone()[0] == len(
            migrations.available())


def test_no_transaction_files_are_split_into_their_statements():
    concurrent = [m for m in migrations.available() if not m.transactional]
    assert [m.label for m in concurrent] == ["0003_legacy_key_indexes", "0006_identity_indexes"]
    statements = migrations.split_statements(concurrent[0].path.read_text())
    assert len(statements) == 2 and all(s.startswith("CREATE UNIQUE INDEX CONCURRENTLY") for s in statements)
    identity = migrations.split_statements(concurrent[1].path.read_text())
    assert len(identity) == 2 and identity[0] == "ALTER TABLE contacts VALIDATE CONSTRAINT contacts_phone_or_bsuid"
    assert identity[1].startswith("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contacts_workspace_bsuid")


# --- migrations 0005/0006: WhatsApp identity beyond the phone (docs/contract.md §4a) ---------------------------

BSUID = "ID.13491208655302741918"


def identity_row(conn: psycopg.Connection, workspace: str, bsuid: str | None, username: str | None = None,
                 phone: str | None = None) -> None:
    conn.execute("INSERT INTO contacts (workspace_id, phone, bsuid, username) VALUES (%s, %s, %s, %s)",
                 (workspace, phone, bsuid, username))


def rows_digest(conn: psycopg.Connection) -> list[str]:
    """Every row of every table as text, but the columns 0005 adds (NULL on an old row)."""
    added = {"contacts": "- 'bsuid' - 'parent_bsuid' - 'username'", "messages": "- 'error_code' - 'error_title'",
             "conversations": "- 'status_at'"}
    return [conn.execute(f"SELECT md5(string_agg((to_jsonb(t) {added.get(table, '')})::text, '|' "
                         f"ORDER BY to_jsonb(t)::text)) FROM {table} t").fetchone()[0] for table in TABLES]


def test_identity_migrations_on_a_database_with_data_keep_every_row(new_database, cli, make_app):
    url = new_database("identity")
    with psycopg.connect(url, autocommit=True) as conn:
        assert [m.label for m in migrations.upgrade(conn, up_to=4)][-1] == "0004_api_keys"
        load_dataset(conn, load_contract("demo_data.json"))
        before, digest = counts(conn), rows_digest(conn)
    behind = cli(url, "check")
    assert behind.exit_code == 1
    later = [m.label for m in migrations.available() if m.version >= 5]
    assert f"{len(later)} pending migration(s): {', '.join(later)}" in behind.output
    assert "MISSING  missing column contacts.bsuid (text)" in behind.output
    assert "MISSING  missing unique constraint contacts(workspace_id, bsuid) where bsuid IS NOT NULL" in behind.output
    result = cli(url, "upgrade")
    assert result.exit_code == 0, result.output
    assert "applied 0005_identity" in result.output and "applied 0006_identity_indexes" in result.output
    with psycopg.connect(url, autocommit=True) as conn:
        assert counts(conn) == before and rows_digest(conn) == digest, "every row kept, unchanged"
        nullable = conn.execute("SELECT is_nullable FROM information_schema.columns "
                                "WHERE table_name = 'contacts' AND column_name = 'phone'").fetchone()[0]
        assert nullable == "YES"
        identity_row(conn, WORKSPACE, BSUID, "budi.username")  # username-only: no phone
        identity_row(conn, OTHER_WORKSPACE, BSUID)  # a BSUID is unique per workspace only
        with pytest.raises(psycopg.errors.UniqueViolation, match="contacts_workspace_bsuid"):
            identity_row(conn, WORKSPACE, BSUID, phone="+6281299990000")
        with pytest.raises(psycopg.errors.CheckViolation, match="contacts_phone_or_bsuid"):
            identity_row(conn, WORKSPACE, None, "nobody")
    checked = cli(url, "check", "-v")
    assert checked.exit_code == 0, checked.output
    for line in ("unique contacts(workspace_id, bsuid) where bsuid IS NOT NULL",
                 "check on contacts: a phone or a BSUID validated", "every contacts.bsuid is a BSUID"):
        assert f"ok       {line}" in checked.output
    app = make_app(DATABASE_URL=url, CONVEX_SITE_URL=None)
    found = app.test_client().get("/api/contacts/by-phone", query_string={"bsuid": BSUID, "workspace_id": WORKSPACE},
                                  headers={"x-api-key": API_KEY}).get_json()
    assert found["contact"]["name"] == "budi.username", "the name falls back to the username"
    assert lookup(app).get_json()["contact"]["name"] == DEMO_NAME


def test_check_names_what_is_wrong_with_identity_and_never_prints_a_bsuid(new_database, cli):
    url = new_database("identity_damaged")
    assert cli(url, "upgrade").exit_code == 0
    bad = ["id.13491208655302741918", "ID.1349-120865530274191"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO workspaces (id, name) VALUES (%s, 'w')", (WORKSPACE,))
        conn.execute("DROP INDEX contacts_workspace_bsuid")
        conn.execute("ALTER TABLE contacts DROP CONSTRAINT contacts_phone_or_bsuid")
        for bsuid in [*bad, BSUID, BSUID, None]:
            identity_row(conn, WORKSPACE, bsuid)
        conn.execute("UPDATE contacts SET parent_bsuid = 'ID.13491208655302741918' WHERE bsuid = %s", (bad[0],))
        with pytest.raises(psycopg.errors.UniqueViolation):  # a build that fails leaves an invalid index
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY contacts_workspace_bsuid ON contacts (workspace_id, bsuid) "
                         "WHERE bsuid IS NOT NULL")
    result = cli(url, "check")
    assert result.exit_code == 1
    for line in ("WRONG    invalid index on contacts (workspace_id, bsuid): an interrupted build; run db upgrade",
                 "MISSING  missing unique constraint contacts(workspace_id, bsuid) where bsuid IS NOT NULL",
                 "MISSING  missing check constraint on contacts: a phone or a BSUID",
                 "WRONG    2 contacts.bsuid not a BSUID (e.g. ", "WRONG    1 contacts.parent_bsuid not a parent BSUID",
                 "WRONG    1 contacts with neither a phone nor a BSUID (no lookup can find them)",
                 "6 problem(s)"):
        assert line in result.output
    assert "id.134****918" in result.output and "ID.134****191" in result.output, "masked like a phone"
    assert not any(b in result.output for b in [*bad, BSUID]), result.output

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM contacts WHERE bsuid IS NULL OR bsuid <> %s", (BSUID,))
        conn.execute("DELETE FROM contacts WHERE ctid <> (SELECT min(ctid) FROM contacts)")
        conn.execute("DROP INDEX contacts_workspace_bsuid")
        conn.execute("CREATE UNIQUE INDEX nnd ON contacts (workspace_id, bsuid) NULLS NOT DISTINCT")
        conn.execute("ALTER TABLE contacts ADD CHECK (bsuid IS NOT NULL OR phone IS NOT NULL) NOT VALID")
    result = cli(url, "check")
    assert result.exit_code == 1 and "2 problem(s)" in result.output, result.output
    assert "WRONG    unique contacts(workspace_id, bsuid) is NULLS NOT DISTINCT" in result.output
    assert "WRONG    check on contacts: a phone or a BSUID is NOT VALID" in result.output

    with psycopg.connect(url, autocommit=True) as conn:  # a plain unique index fits: NULLs are distinct
        conn.execute("DROP INDEX nnd")
        conn.execute("CREATE UNIQUE INDEX plain ON contacts (workspace_id, bsuid)")
        conn.execute("ALTER TABLE contacts VALIDATE CONSTRAINT contacts_check")
    assert cli(url, "check").exit_code == 0


# --- every bad input to db check and db upgrade: one line, a non-zero exit ------------------------------------


def test_check_judges_a_legacy_bigint_phone_instead_of_failing(new_database, cli):
    """The original CRM's shape: `phone` as digits in a bigint. The type is wrong, and so are the values."""
    url = new_database("bigint_phone")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE contacts (id uuid PRIMARY KEY, workspace_id uuid, phone bigint, bsuid bigint)")
        conn.execute("INSERT INTO contacts VALUES (gen_random_uuid(), gen_random_uuid(), 6281234567890, 42)")
    result = cli(url, "check")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    for line in ("WRONG    wrong type contacts.phone: bigint, expected text",
                 "WRONG    1 contacts.phone not in E.164 (e.g. 628****890 (13 chars); db import-legacy normalises)",
                 "WRONG    1 contacts.bsuid not a BSUID"):
        assert line in result.output
    assert "6281234567890" not in result.output


def test_upgrade_against_a_busy_table_names_it_in_one_line_and_applies_nothing_of_that_migration(new_database, cli):
    url = new_database("busy")
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.upgrade(conn, up_to=4)
    with psycopg.connect(url) as holder:  # a long transaction that has read contacts: ALTER TABLE must wait
        holder.execute("SELECT count(*) FROM contacts").fetchone()
        holder_pid = holder.info.backend_pid
        busy = cli(url, "upgrade")
    assert busy.exit_code == 1 and isinstance(busy.exception, SystemExit), busy.exception
    assert busy.output == (f"Error: 0005_identity not applied: a table it changes stayed locked past lock_timeout, "
                           f"busy: contacts (held by pid {holder_pid}); nothing of it was written, run db upgrade "
                           "again\n")
    with psycopg.connect(url) as conn:
        assert [m.label for m in migrations.pending(conn, "public")][0] == "0005_identity"
        assert conn.execute("SELECT to_regclass('api_keys') IS NOT NULL").fetchone()[0], "0004 stays applied"
        assert "bsuid" not in [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'contacts'")]
    done = cli(url, "upgrade")
    assert done.exit_code == 0 and "applied 0005_identity" in done.output
