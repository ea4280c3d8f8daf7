"""Every docs/contract.md §3 error row of the PostgreSQL route: exact status and body."""

import threading

import psycopg
import pytest

from helpers import API_KEY, WORKSPACE
from services.postgres import migrations
from tools.servers import free_port

URL = "/api/contacts/by-phone"
GOOD = {"phone": "081234567890", "workspace_id": WORKSPACE}


def assert_json_error(response, status, message):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": message}


@pytest.mark.parametrize("params, message", [
    ({"workspace_id": WORKSPACE}, "Missing phone parameter"),
    ({"phone": "", "workspace_id": WORKSPACE}, "Missing phone parameter"),
    ({"phone": "081234567890"}, "Missing workspace_id parameter"),
    ({"phone": "081234567890", "workspace_id": ""}, "Missing workspace_id parameter"),
    ({}, "Missing phone parameter"),
    ({"phone": "0812-CALL-ME", "workspace_id": WORKSPACE}, "Invalid phone number"),
    ({"phone": "123", "workspace_id": WORKSPACE}, "Invalid phone number"),
    ({"phone": "081234567890", "workspace_id": "not-a-uuid"}, "Invalid workspace_id"),
    ({"phone": "081234567890", "workspace_id": WORKSPACE + "0"}, "Invalid workspace_id"),
    ({"phone": "bad", "workspace_id": "bad"}, "Invalid phone number"),
])
def test_parameters(client, auth, params, message):
    assert_json_error(client.get(URL, query_string=params, headers=auth), 400, message)


@pytest.mark.parametrize("headers", [{}, {"x-api-key": ""}, {"x-api-key": "wrong"}, {"x-api-key": API_KEY + "x"}])
def test_key_absent_or_wrong(client, headers):
    assert_json_error(client.get(URL, query_string=GOOD, headers=headers), 401, "Unauthorized")


def test_key_is_checked_before_parameters(client):
    assert_json_error(client.get(URL, headers={"x-api-key": "wrong"}), 401, "Unauthorized")


def test_configuration_is_checked_first(db, make_app):
    """Neither CRM_API_KEY nor any workspace key (`db` empties api_keys with the workspaces)."""
    app = make_app(CRM_API_KEY="")
    response = app.test_client().get(URL, headers={"x-api-key": "anything"})
    assert_json_error(response, 500, "Service not configured")


def test_unknown_path_and_wrong_method(client, auth):
    assert_json_error(client.get("/api/contacts/nope", headers=auth), 404, "Not found")
    assert_json_error(client.get("/", headers=auth), 404, "Not found")
    response = client.post(URL, query_string=GOOD, headers=auth)
    assert_json_error(response, 405, "Method not allowed")
    assert "GET" in response.headers["Allow"]


def test_a_bug_is_500_without_traceback(app, auth, caplog):
    @app.get("/api/contacts/explode")
    def explode():
        raise RuntimeError("secret detail")

    response = app.test_client().get("/api/contacts/explode", headers=auth)
    assert_json_error(response, 500, "Internal server error")
    assert b"secret detail" not in response.data and b"Traceback" not in response.data
    assert any(r.exc_info for r in caplog.records), "the traceback is logged"


def test_database_unreachable_is_503_with_retry_after(make_app, auth):
    app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", DATABASE_POOL_TIMEOUT="0.5")
    response = app.test_client().get(URL, query_string=GOOD, headers=auth)
    assert_json_error(response, 503, "Backend unavailable")
    assert response.headers["Retry-After"].isdigit()


def test_statement_timeout_is_504(make_app, auth, db, demo):
    app = make_app(DATABASE_STATEMENT_TIMEOUT_MS="300")
    client = app.test_client()
    assert client.get(URL, query_string=GOOD, headers=auth).status_code == 200
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with psycopg.connect(db.info.dsn) as conn, conn.transaction():
            conn.execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        locked.wait(5)
        assert_json_error(client.get(URL, query_string=GOOD, headers=auth), 504, "Backend timeout")
    finally:
        release.set()
        holder.join()
    assert client.get(URL, query_string=GOOD, headers=auth).status_code == 200


def _broken_database(postgres, name: str, *, record_migrations: bool) -> str:
    """A database whose `contacts` table is not docs/contract.md's, its migrations recorded or not."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres.url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE contacts (id int)")
        if record_migrations:
            # Someone marked every migration applied by hand: the schema check passes, the SQL does not.
            conn.execute("CREATE TABLE kontak_schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())")
            for migration in migrations.available():
                conn.execute("INSERT INTO kontak_schema_migrations (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
    return url


def test_unexpected_database_answer_is_502(postgres, make_app, auth):
    """The backend answers something unexpected (a wrong table behind recorded migrations): 502."""
    app = make_app(DATABASE_URL=_broken_database(postgres, "broken", record_migrations=True), CONVEX_SITE_URL=None)
    response = app.test_client().get(URL, query_string=GOOD, headers=auth)
    assert_json_error(response, 502, "Backend error")


def test_database_behind_its_migrations_is_503(postgres, make_app, auth):
    """A database Kontak's migrations were never applied to: 503, never a wrong answer (docs/contract.md §12)."""
    app = make_app(DATABASE_URL=_broken_database(postgres, "behind", record_migrations=False), CONVEX_SITE_URL=None)
    response = app.test_client().get(URL, query_string=GOOD, headers=auth)
    assert_json_error(response, 503, "Backend unavailable")
    assert response.headers.get("Retry-After")
