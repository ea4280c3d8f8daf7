"""Keys per workspace, the commands' side (docs/contract.md §13): create, list, revoke, and copy
the hashes to Convex. The request path's side (the key ring) is services/api_keys.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import requests

from services.api_keys import PREFIX_LENGTH, generate_key, hash_key
from services.contract import limits
from services.errors import ApiError
from services.identity import is_uuid

_KEYS_PATH = limits().convex_paths["keys"]
_BATCH = limits().key_batch_size


# -- the commands' side: PostgreSQL --------------------------------------------------------------


@dataclass(frozen=True)
class KeyRow:
    id: str
    workspace_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key_hash: str

    def for_convex(self) -> dict[str, Any]:
        """What Convex keeps of a key: never the key itself."""
        revoked = None if self.revoked_at is None else round(self.revoked_at.timestamp() * 1000)
        return {"id": self.id, "workspace_id": self.workspace_id, "key_hash": self.key_hash,
                "prefix": self.prefix, "name": self.name, "revoked_at": revoked}


_COLUMNS = "id::text, workspace_id::text, name, prefix, created_at, last_used_at, revoked_at, key_hash"


class KeyCommandError(ApiError):
    """A key command's refusal, said in one line."""


def create_key(conn: psycopg.Connection, workspace_id: str, name: str) -> tuple[KeyRow, str]:
    """A new key of `workspace_id`; the key itself is returned once and stored nowhere."""
    if not conn.execute("SELECT 1 FROM workspaces WHERE id = %s", (workspace_id,)).fetchone():
        raise KeyCommandError(f"no workspace {workspace_id}")
    key = generate_key()
    row = conn.execute(
        f"""INSERT INTO api_keys (workspace_id, name, key_hash, prefix) VALUES (%s, %s, %s, %s)
            RETURNING {_COLUMNS}""",
        (workspace_id, name, hash_key(key), key[:PREFIX_LENGTH])).fetchone()
    return KeyRow(*row), key


def list_keys(conn: psycopg.Connection, workspace_id: str | None = None) -> list[KeyRow]:
    where, params = ("WHERE workspace_id = %s", (workspace_id,)) if workspace_id else ("", ())
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, id", params).fetchall()
    return [KeyRow(*row) for row in rows]


def keys_by_id(conn: psycopg.Connection, ids: list[str]) -> list[KeyRow]:
    """The keys among `ids` that exist (the follower's read)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
    return [KeyRow(*row) for row in rows]


def revoke_key(conn: psycopg.Connection, ident: str) -> KeyRow:
    """Revoke the key with id `ident`, or the one key whose prefix is `ident`."""
    column = "id" if is_uuid(ident) else "prefix"
    matches = conn.execute(f"SELECT id::text FROM api_keys WHERE {column} = %s", (ident,)).fetchall()
    if not matches:
        raise KeyCommandError("no key has that id or prefix")
    if len(matches) > 1:
        raise KeyCommandError(f"{len(matches)} keys have that prefix: revoke by id (keys list shows the ids)")
    row = conn.execute(
        f"""UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = %s
            RETURNING {_COLUMNS}""", (matches[0][0],)).fetchone()
    return KeyRow(*row)


# -- the commands' side: Convex ------------------------------------------------------------------


def push_to_convex(site_url: str, admin_key: str | None, keys: list[KeyRow], timeout: float = 30) -> int:
    """Upsert `keys` (hashes, workspaces, revocations) into the Convex deployment; returns how many.

    Authenticated by the deployment-wide CRM_API_KEY; raises ApiError with one line on failure
    (the line never holds a key, hash or prefix).
    """
    if not admin_key:
        raise KeyCommandError("CRM_API_KEY is not set: the Convex key route needs it")
    sent = 0
    for start in range(0, len(keys), _BATCH):
        batch = [k.for_convex() for k in keys[start:start + _BATCH]]
        try:
            answer = requests.post(site_url.rstrip("/") + _KEYS_PATH, json={"keys": batch},
                                   headers={"x-api-key": admin_key}, timeout=timeout)
        except requests.RequestException as exc:
            raise KeyCommandError(f"Convex unreachable at {site_url}: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise KeyCommandError(f"Convex key route answered HTTP {answer.status_code}")
        sent += len(batch)
    return sent
