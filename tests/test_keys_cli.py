"""`flask --app app keys create | list | revoke` and sync-convex's key hashes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers import DEMO_PHONE, ISSUED, OTHER_WORKSPACE, WORKSPACE, two_workspace_dataset
from services import api_keys
from tools.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def cli(make_app, demo):
    app = make_app()
    return lambda *args: app.test_cli_runner().invoke(args=["keys", *args])


def create(cli, workspace: str = WORKSPACE, name: str = "bot A", *extra: str) -> tuple[str, str]:
    result = cli("create", "--workspace", workspace, "--name", name, *extra)
    assert result.exit_code == 0, result.output
    key = result.output.rstrip("\n").splitlines()[-1]
    ISSUED.append(key)
    return key, result.output


def convex_lookup(standin, key: str, workspace: str = WORKSPACE) -> int:
    return requests.get(standin.url + "/http/contacts/getByPhone", headers={"x-api-key": key}, timeout=30,
                        params={"phone": DEMO_PHONE, "workspace_id": workspace}).status_code


def test_create_prints_the_key_once_alone_on_the_last_line(cli, db, convex, standin):
    convex.import_dataset(two_workspace_dataset())
    key, output = create(cli)
    assert api_keys.KEY_FORMAT.fullmatch(key)
    assert output.count(key) == 1 and output.rstrip("\n").endswith("\n" + key)
    assert "Convex: updated" in output
    stored = db.execute("SELECT key_hash, prefix, name, workspace_id::text FROM api_keys").fetchall()
    assert stored == [(hashlib.sha256(key.encode()).hexdigest(), key[:12], "bot A", WORKSPACE)]
    assert convex_lookup(standin, key) == 200


def test_list_never_shows_a_key_or_its_hash(cli, db):
    key_a, _ = create(cli, WORKSPACE, "bot A", "--no-convex")
    key_b, _ = create(cli, OTHER_WORKSPACE, "bot B", "--no-convex")
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    for key in (key_a, key_b):
        assert key not in listed.output and api_keys.hash_key(key) not in listed.output
        assert key[:12] in listed.output
    assert "bot A" in listed.output and "bot B" in listed.output and "2 key(s), 2 active" in listed.output
    only_b = cli("list", "--workspace", OTHER_WORKSPACE)
    assert "bot B" in only_b.output and "bot A" not in only_b.output and "1 key(s), 1 active" in only_b.output


def test_revoke_by_prefix_and_by_id_also_in_convex(cli, db, convex, standin):
    convex.import_dataset(two_workspace_dataset())
    key_1, _ = create(cli, WORKSPACE, "old")
    key_2, _ = create(cli, WORKSPACE, "new")
    revoked = cli("revoke", key_1[:12])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked key" in revoked.output and "Convex: updated" in revoked.output
    assert key_1[:12] not in revoked.output
    assert convex_lookup(standin, key_1) == 401 and convex_lookup(standin, key_2) == 200
    key_id = db.execute("SELECT id::text FROM api_keys WHERE name = 'new'").fetchone()[0]
    assert cli("revoke", key_id).exit_code == 0
    assert convex_lookup(standin, key_2) == 401
    listed = cli("list").output
    assert "2 key(s), 0 active" in listed
    unknown = cli("revoke", "kontak_nope")
    assert unknown.exit_code != 0 and "no key has that id or prefix" in unknown.output


def test_create_refuses_an_unknown_workspace_and_bad_input(cli):
    missing = cli("create", "--workspace", "00000000-0000-4000-8000-00000000dead", "--name", "x")
    assert missing.exit_code != 0 and "no workspace" in missing.output
    assert cli("create", "--workspace", "nope", "--name", "x").exit_code != 0
    assert cli("create", "--workspace", WORKSPACE, "--name", " ").exit_code != 0


def test_create_with_convex_away_warns_and_still_ends_with_the_key(make_app, demo, db):
    app = make_app(CONVEX_SITE_URL=f"http://127.0.0.1:{free_port()}")
    result = app.test_cli_runner().invoke(args=["keys", "create", "--workspace", WORKSPACE, "--name", "bot"])
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").splitlines()
    ISSUED.append(lines[-1])
    assert api_keys.KEY_FORMAT.fullmatch(lines[-1])
    assert any(line.startswith("WARNING: Convex not updated (Convex unreachable") for line in lines)


def test_sync_convex_carries_the_key_hashes(make_app, cli, db, convex, standin, tmp_path):
    key_live, _ = create(cli, WORKSPACE, "live", "--no-convex")
    key_gone, _ = create(cli, WORKSPACE, "gone", "--no-convex")
    assert cli("revoke", key_gone[:12], "--no-convex").exit_code == 0
    app = make_app()
    result = app.test_cli_runner().invoke(args=["sync-convex", "--restart", "--samples", "5", "--state",
                                                str(tmp_path / "state.json")])
    assert result.exit_code == 0, result.output
    assert "synced 2 workspace key hash(es), 1 active" in result.output
    assert convex_lookup(standin, key_live) == 200 and convex_lookup(standin, key_gone) == 401


# --- what a terminal and a shell may hand the commands ---------------------------------------------------------


def flask_command(env: dict[str, str], *args: str | bytes) -> subprocess.CompletedProcess:
    """`flask --app app …` as a shell runs it: `args` may hold bytes that are not UTF-8, as argv can."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, capture_output=True,
                          timeout=60, env={**os.environ, **env})


@pytest.mark.parametrize(("args", "line"), [
    (("keys", "create", "--workspace", WORKSPACE, "--name", b"bot \xff\xfe"), "Error: --name: not valid UTF-8"),
    (("keys", "create", "--workspace", b"0000\xff", "--name", "bot"), "Error: --workspace: not valid UTF-8"),
    (("keys", "revoke", b"kontak_\xff"), "Error: IDENT: not valid UTF-8"),
    (("keys", "list", "--workspace", "nope"), 'Error: --workspace: not a UUID: "nope"'),
])
def test_an_argument_the_commands_cannot_use_is_one_line(env, demo, args, line):
    result = flask_command(env, *args)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [line] and b"Traceback" not in result.stdout


def test_a_name_holding_terminal_escapes_is_printed_escaped(cli, db):
    name = "bot\x1b[2J\x1b]0;pwned\x07\x1b[31m red"
    key, output = create(cli, WORKSPACE, name, "--no-convex")
    shown = "bot\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31m red"
    assert f'"{shown}" for workspace' in output and "\x1b" not in output and "\x07" not in output
    listed = cli("list").output
    assert shown in listed and "\x1b" not in listed
    revoked = cli("revoke", key[:12], "--no-convex").output
    assert f'"{shown}" of workspace' in revoked and "\x1b" not in revoked
    assert db.execute("SELECT name FROM api_keys").fetchone() == (name,), "stored as given"


def test_a_key_from_keys_create_works_at_once_on_a_worker_that_already_holds_the_key_ring(make_app, demo, cli):
    """docs/keys.md: the key "works at once on the PostgreSQL routes"."""
    serving = make_app().test_client()
    first, _ = create(cli, WORKSPACE, "first", "--no-convex")
    query = {"phone": DEMO_PHONE, "workspace_id": WORKSPACE}
    assert serving.get("/api/contacts/by-phone", query_string=query, headers={"x-api-key": first}).status_code == 200
    fresh, _ = create(cli, WORKSPACE, "fresh", "--no-convex")  # the worker's ring was read a moment ago
    answer = serving.get("/api/contacts/by-phone", query_string=query, headers={"x-api-key": fresh})
    assert answer.status_code == 200, answer.get_json()
