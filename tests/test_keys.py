"""Keys per workspace (docs/contract.md §13): the isolation matrix on both lookup routes and
both webhooks, against real PostgreSQL and the real Convex stand-in."""

from __future__ import annotations

import signal

import psycopg
import pytest
import requests

from commands.keys import workspace_keys
from helpers import (
    API_KEY,
    DEMO_NAME,
    DEMO_PHONE,
    LIVE_SECRET,
    OTHER_WORKSPACE,
    UNAUTHORIZED,
    WORKSPACE,
    delivery,
    make_key,
    postgres_processes,
    push,
    sign,
    signal_each,
    stored_workspaces,
    two_workspace_dataset,
    unknown_key,
)
from services import api_keys
from services.contract import formats

ROUTES = ["/api/contacts/by-phone", "/api/contacts/by-phone-convex"]
MISSING_WORKSPACE = "00000000-0000-4000-8000-00000000dead"


@pytest.fixture()
def keyed(db, load, convex, standin) -> dict[str, str]:
    """Both backends on the two-workspace demo data; keys of workspace A (one revoked) in both."""
    data = two_workspace_dataset()
    load(data)
    convex.import_dataset(data)
    (row_a, key_a), (row_r, key_r) = make_key(db, name="bot A"), make_key(db, name="old bot A")
    revoked = workspace_keys.revoke_key(db, row_r.id)
    push(standin.url, [row_a, revoked])
    return {"a": key_a, "revoked": key_r}


def lookup(client, route: str, key: str | None, workspace: str = WORKSPACE, phone: str = DEMO_PHONE):
    headers = {} if key is None else {"x-api-key": key}
    return client.get(route, query_string={"phone": phone, "workspace_id": workspace}, headers=headers)


@pytest.mark.parametrize("route", ROUTES)
def test_lookup_isolation_matrix(client, keyed, route):
    expected = lookup(client, route, API_KEY).get_json()
    assert expected["found"] is True and expected["contact"]["name"] == DEMO_NAME
    cases = [
        ("key of A on A", keyed["a"], WORKSPACE, 200, expected),
        ("key of A on A, workspace_id upper-case", keyed["a"], WORKSPACE.upper(), 200, expected),
        ("key of A on B", keyed["a"], OTHER_WORKSPACE, 401, UNAUTHORIZED),
        ("key of A on a workspace that does not exist", keyed["a"], MISSING_WORKSPACE, 401, UNAUTHORIZED),
        ("revoked key", keyed["revoked"], WORKSPACE, 401, UNAUTHORIZED),
        ("unknown key", unknown_key(), WORKSPACE, 401, UNAUTHORIZED),
        ("malformed key", "kontak_" + "x" * 10, WORKSPACE, 401, UNAUTHORIZED),
        ("malformed key, not ASCII", "kontak_" + "é" * 43, WORKSPACE, 401, UNAUTHORIZED),
        ("no key", None, WORKSPACE, 401, UNAUTHORIZED),
        ("global key on B", API_KEY, OTHER_WORKSPACE, 200, lookup(client, route, API_KEY, OTHER_WORKSPACE).get_json()),
    ]
    for name, key, workspace, status, body in cases:
        answer = lookup(client, route, key, workspace)
        assert (answer.status_code, answer.get_json()) == (status, body), name


@pytest.mark.parametrize("route", ROUTES)
def test_key_before_parameters_workspace_after(client, keyed, route):
    assert lookup(client, route, unknown_key(), "not-a-uuid", "abc").get_json() == UNAUTHORIZED
    # A valid workspace key passes the key step; bad parameters are then 400, as for CRM_API_KEY.
    answer = lookup(client, route, keyed["a"], OTHER_WORKSPACE, "abc")
    assert (answer.status_code, answer.get_json()) == (400, {"error": "Invalid phone number"})
    answer = lookup(client, route, keyed["a"], "not-a-uuid")
    assert (answer.status_code, answer.get_json()) == (400, {"error": "Invalid workspace_id"})


@pytest.mark.parametrize("route", ROUTES)
def test_without_crm_api_key(make_app, db, load, convex, standin, route):
    """No CRM_API_KEY: 500 until a workspace key exists, then that key works."""
    data = two_workspace_dataset()
    load(data)
    convex.import_dataset(data)
    client = make_app(CRM_API_KEY=None).test_client()
    answer = lookup(client, route, unknown_key())
    assert (answer.status_code, answer.get_json()) == (500, {"error": "Service not configured"})
    row, key = make_key(db)
    push(standin.url, [row])
    fresh = make_app(CRM_API_KEY=None)
    answer = lookup(fresh.test_client(), route, key)
    assert answer.status_code == 200 and answer.get_json()["found"] is True
    assert lookup(fresh.test_client(), route, API_KEY).get_json() == UNAUTHORIZED


def test_a_workspace_key_lookup_is_one_round_trip_in_steady_state(client, keyed, timing_lines):
    for _ in range(3):
        assert lookup(client, ROUTES[0], keyed["a"]).status_code == 200
    # The first request of a process loads the key ring; the next ones only read it.
    assert [line for line in timing_lines()[1:] if "queries=1" not in line] == []


# -- the webhooks ----------------------------------------------------------------------------------


def _webhook_cases(keyed: dict[str, str]) -> list[tuple[str, dict[str, str], int, dict, list[str]]]:
    both, only_a = [WORKSPACE, OTHER_WORKSPACE], [WORKSPACE]
    return [
        ("global key", {"x-api-key": API_KEY}, 200, {"received": True, "stored": 2, "duplicates": 0, "ignored": 0},
         both),
        ("key of A", {"x-api-key": keyed["a"]}, 200, {"received": True, "stored": 1, "duplicates": 0, "ignored": 1},
         only_a),
        ("revoked key", {"x-api-key": keyed["revoked"]}, 401, UNAUTHORIZED, []),
        ("unknown key", {"x-api-key": unknown_key()}, 401, UNAUTHORIZED, []),
        ("malformed key", {"x-api-key": "kontak_" + "y" * 500}, 401, UNAUTHORIZED, []),
        ("signature", {"__sign__": "1"}, 200, {"received": True, "stored": 2, "duplicates": 0, "ignored": 0}, both),
        # contract/formats.json auth_order: a valid signature is tried before the key beside it.
        ("signature beside a key of A", {"__sign__": "1", "x-api-key": keyed["a"]}, 200,
         {"received": True, "stored": 2, "duplicates": 0, "ignored": 0}, both),
        ("global key beside a wrong signature", {"x-api-key": API_KEY, "X-Webhook-Signature": "0" * 64}, 200,
         {"received": True, "stored": 2, "duplicates": 0, "ignored": 0}, both),
    ]


def test_the_matrix_follows_the_contracts_credential_order():
    assert formats().auth_order["webhook"] == ("signature", "crm_api_key", "workspace_key")
    assert formats().auth_order["lookup"] == ("crm_api_key", "workspace_key")


def _clear_delivered(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM messages WHERE kapso_message_id LIKE 'wamid.iso-%'")


def test_flask_webhook_isolation_matrix(make_app, db, keyed, caplog):
    client = make_app(KAPSO_WEBHOOK_SECRET=LIVE_SECRET).test_client()
    body, base = delivery()
    for name, extra, status, answer_body, workspaces in _webhook_cases(keyed):
        _clear_delivered(db)
        headers = {**base, **extra}
        if headers.pop("__sign__", None):
            headers["X-Webhook-Signature"] = sign(body, LIVE_SECRET)
        caplog.clear()
        answer = client.post("/api/webhook/kapso", data=body, headers=headers)
        assert (answer.status_code, answer.get_json()) == (status, answer_body), name
        assert stored_workspaces(db) == workspaces, name
        if name == "key of A":
            assert "webhook events ignored reason=workspace_not_allowed count=" in caplog.text


def test_convex_webhook_isolation_matrix(keyed, standin):
    body, base = delivery()
    for name, extra, status, answer_body, _workspaces in _webhook_cases(keyed):
        headers = {**base, **extra, "X-Webhook-Event": "whatsapp.message.received"}
        if headers.pop("__sign__", None):
            headers["X-Webhook-Signature"] = sign(body, LIVE_SECRET)
        # A new message id per case: Convex keeps what the previous case stored.
        unique = body.replace(b"wamid.iso-", f"wamid.iso-{name.replace(' ', '-')}-".encode())
        if "X-Webhook-Signature" in headers:
            headers["X-Webhook-Signature"] = sign(unique, LIVE_SECRET)
        answer = requests.post(standin.url + "/webhook/kapso", data=unique, headers=headers, timeout=30)
        assert (answer.status_code, answer.json()) == (status, answer_body), name


def test_a_convex_key_for_another_workspace_reads_nothing_there(keyed, standin):
    """The Convex HTTP action, called directly, refuses a key of A for B without a hint."""
    for workspace in (OTHER_WORKSPACE, MISSING_WORKSPACE):
        answer = requests.get(standin.url + "/http/contacts/getByPhone", timeout=30,
                              params={"phone": DEMO_PHONE, "workspace_id": workspace},
                              headers={"x-api-key": keyed["a"]})
        assert (answer.status_code, answer.json()) == (401, {"found": False, "error": "Unauthorized"})


def test_no_key_reaches_a_log(keyed, client, caplog, standin):
    for route in ROUTES:
        lookup(client, route, keyed["a"])
        lookup(client, route, keyed["a"], OTHER_WORKSPACE)
        lookup(client, route, keyed["revoked"])
    text = caplog.text + (standin.log_file.read_text(errors="replace") if standin.log_file else "")
    for key in keyed.values():
        assert key not in text and key[:api_keys.PREFIX_LENGTH] not in text
        assert api_keys.hash_key(key) not in text


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_a_workspace_key_on_the_convex_route_does_not_need_postgres(make_app, own_postgres, convex, standin, how):
    """docs/contract.md §11: one sick backend never starves the other. Convex holds the same key hashes
    (revocations included), so with PostgreSQL stopped or frozen a workspace key still reads its workspace
    there, in a process that already read its key ring and in one that never could."""
    data = two_workspace_dataset()
    pg = own_postgres(data)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        (row_a, key_a), (row_r, key_r) = make_key(conn, name="bot A"), make_key(conn, name="old bot A")
        revoked = workspace_keys.revoke_key(conn, row_r.id)
    convex.import_dataset(data)
    push(standin.url, [row_a, revoked])
    warm = make_app(DATABASE_URL=pg.url, DATABASE_STATEMENT_TIMEOUT_MS="500").test_client()
    assert lookup(warm, ROUTES[1], key_a).status_code == 200
    if how == "stopped":
        pg.stop("immediate")
    else:
        signal_each(postgres_processes(pg), signal.SIGSTOP)
    cold = make_app(DATABASE_URL=pg.url, DATABASE_STATEMENT_TIMEOUT_MS="500").test_client()
    for client in (warm, cold):
        answers = [lookup(client, ROUTES[1], key_a) for _ in range(15)]
        assert [a.status_code for a in answers] == [200] * 15
        assert answers[-1].get_json()["contact"]["name"] == DEMO_NAME
        assert lookup(client, ROUTES[1], key_r).get_json() == UNAUTHORIZED
        assert lookup(client, ROUTES[1], key_a, workspace=OTHER_WORKSPACE).get_json() == UNAUTHORIZED
        assert lookup(client, ROUTES[1], "not-a-key").get_json() == UNAUTHORIZED
    assert lookup(warm, ROUTES[0], key_a).status_code in (503, 504)
