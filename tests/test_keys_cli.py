"""`flask --app app keys create | list | revoke` and sync-convex's key hashes (issue 14)."""

from __future__ import annotations

import hashlib

import pytest
import requests

from helpers import DEMO_PHONE, ISSUED, OTHER_WORKSPACE, WORKSPACE, two_workspace_dataset
from services import api_keys
from tools.servers import free_port


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
