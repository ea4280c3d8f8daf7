"""Keys per workspace (docs/contract.md §13), the request path's side: checking a key (the key ring).

Creating, listing, revoking and copying keys to Convex are the commands' (commands/keys/).

A key is `kontak_` + 256 random bits (43 URL-safe characters). Only its hex
SHA-256 is stored: a key is a random secret, not a password, so a fast hash
is as strong as a slow one. Its first characters (`prefix`) tell keys apart
in `keys list`; they are too short to be of use to anyone.

Checking a key costs a lookup no database round trip in steady state: each
process keeps a snapshot of the non-revoked keys (`KeyRing`), refreshed in
the background once it is `REFRESH_AFTER_S` old while keys are being used,
and refreshed before answering once it is `MAX_AGE_S` old (an idle worker).
So a revoked key stops working on every worker within `MAX_AGE_S` plus one
refresh. Neither a key, its hash nor its prefix is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app
from psycopg import sql

from services.contract import formats
from services.errors import ApiError
from services.postgres.pool import Database

KEY_PREFIX = "kontak_"
PREFIX_LENGTH = 12
# kontak_ + token_urlsafe(32): exactly 43 characters of the URL-safe alphabet (contract/formats.json).
KEY_FORMAT = re.compile(formats().api_key)
REFRESH_AFTER_S = 1.0
MAX_AGE_S = 2.0
LAST_USED_EVERY_S = 60.0

# Marks the key ring's own statements (snapshot, last_used_at), so a count of the lookups'
# statements (bench/keys.py) can tell them apart: they belong to no request.
KEY_RING_TAG = "/* kontak:key-ring */"
logger = logging.getLogger("kontak")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def well_formed(key: str | None) -> bool:
    """Only a key of Kontak's own shape is worth a look in the key ring."""
    return key is not None and KEY_FORMAT.fullmatch(key) is not None


# -- the key ring: which workspace a key belongs to, per process ------------------------------


@dataclass(frozen=True)
class _Entry:
    key_id: str
    key_hash: str
    workspace_id: str


class KeyRing:
    """Non-revoked keys of the deployment, by prefix; one per app and process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_prefix: dict[str, list[_Entry]] = {}
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()  # one refresh at a time
        self._refreshing = False
        self._used: set[str] = set()
        self._used_written_at = time.monotonic()

    @property
    def loaded(self) -> bool:
        """Has this process read the key ring at least once?"""
        return self._loaded_at != -float("inf")

    def any_active(self, wait: bool = True) -> bool:
        """Is there a non-revoked key at all (else, without CRM_API_KEY: not configured)?"""
        return bool(self._snapshot(wait))

    def workspace_of(self, key: str | None) -> str | None:
        """The workspace of a valid, non-revoked key; None for anything else."""
        return self._find(key, wait=True) if well_formed(key) else None

    def known_workspace_of(self, key: str | None) -> str | None:
        """`workspace_of` from the keys this process already holds: never waits on the database
        (a stale ring is refreshed in the background)."""
        return self._find(key, wait=False) if well_formed(key) else None

    def _find(self, key: str | None, wait: bool) -> str | None:
        assert key is not None
        digest = hash_key(key)
        found = _match(self._snapshot(wait), key, digest)  # after the format check: a malformed key costs nothing
        if found is None and wait:
            # A key made since this process last read the ring works at once (docs/keys.md): a miss
            # reads the ring again, unless a read began after the miss (concurrent misses share it).
            self._refresh(in_request=True, newer_than=time.monotonic())
            found = _match(self._by_prefix, key, digest)
        if found is None:
            return None
        self._used.add(found.key_id)
        return found.workspace_id

    def _snapshot(self, wait: bool = True) -> dict[str, list[_Entry]]:
        age = time.monotonic() - self._loaded_at
        if age > MAX_AGE_S and wait:
            self._refresh(in_request=True)
        elif age > REFRESH_AFTER_S and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_in_background, daemon=True, name="kontak-keys").start()
        return self._by_prefix

    def _refresh_in_background(self) -> None:
        try:
            self._refresh(in_request=False)
            self._write_last_used()
        except ApiError:
            pass  # the database is away: the next request past MAX_AGE_S finds out and answers 503
        except Exception:  # a background refresh must not die loudly; log the class only
            logger.exception("api keys: refresh failed")
        finally:
            self._refreshing = False

    def _refresh(self, in_request: bool, newer_than: float | None = None) -> None:
        with self._lock:
            # Another request read it while this one waited: fresh enough.
            if in_request and (self._loaded_at >= newer_than if newer_than is not None
                               else time.monotonic() - self._loaded_at <= MAX_AGE_S):
                return
            started = time.monotonic()
            query = sql.SQL(KEY_RING_TAG + " SELECT id::text, key_hash, workspace_id::text, prefix "
                            "FROM {}.api_keys WHERE revoked_at IS NULL").format(self._schema())
            # In a request, its timing line counts the round trip (Database.read does).
            rows = self.db.read(lambda conn: conn.execute(query).fetchall())
            by_prefix: dict[str, list[_Entry]] = {}
            for key_id, key_hash, workspace_id, prefix in rows:
                by_prefix.setdefault(prefix, []).append(_Entry(key_id, key_hash, workspace_id))
            self._by_prefix, self._loaded_at = by_prefix, started

    def _schema(self) -> sql.Identifier:
        return sql.Identifier(self.db.settings.get("DATABASE_SCHEMA", "public"))

    def _write_last_used(self) -> None:
        """`last_used_at`, coarse: at most once a minute per process, off the request path."""
        if not self._used or time.monotonic() - self._used_written_at < LAST_USED_EVERY_S:
            return
        used, self._used = self._used, set()
        self._used_written_at = time.monotonic()
        statement = sql.SQL(KEY_RING_TAG + " UPDATE {}.api_keys SET last_used_at = now() "
                            "WHERE id = ANY(%s::uuid[])").format(self._schema())
        self.db.write(lambda conn: conn.execute(statement, (sorted(used),)))


def _match(ring: dict[str, list[_Entry]], key: str, digest: str) -> _Entry | None:
    """The ring's entry for `key`. The prefix is not secret; the hash is compared in constant time,
    with every candidate."""
    found = None
    for entry in ring.get(key[:PREFIX_LENGTH], []):
        if hmac.compare_digest(entry.key_hash.encode("ascii"), digest.encode("ascii")):
            found = entry
    return found


def get_keyring() -> KeyRing:
    return current_app.extensions["kontak.keys"]


def init_app(app: Flask) -> None:
    app.extensions["kontak.keys"] = KeyRing(app.extensions["kontak.db"])
