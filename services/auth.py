"""The API-key checks shared by every protected route (docs/contract.md §3, §7 and §13).

A caller is authenticated by the deployment-wide CRM_API_KEY (every
workspace) or by a key of one workspace (services/api_keys.py). The checks
answer which workspace the caller may use: `EVERY_WORKSPACE`, or one id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from services.api_keys import KeyRing, well_formed
from services.errors import BackendTimeout, BackendUnavailable, NotConfigured, Unauthorized

EVERY_WORKSPACE = None  # the scope of CRM_API_KEY and of a valid webhook signature
# The scope of a key the Convex route passes on unjudged: Convex holds the same hashes and checks
# the key and its workspace itself, so a PostgreSQL outage never takes the Convex route down.
JUDGED_BY_CONVEX = "judged-by-convex"


def keys_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison: the time taken says nothing about the key."""
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


def check_api_key(given: str | None, expected: str | None, keyring: KeyRing | None = None) -> str | None:
    """The caller's scope: EVERY_WORKSPACE or a workspace id; configuration is checked first.

    Not configured: no CRM_API_KEY and no workspace key (500). A key that is
    neither: 401, the same answer whatever the key looks like.
    """
    if not expected and (keyring is None or not keyring.any_active()):
        raise NotConfigured()
    return _key_scope(given, expected, keyring)


def is_deployment_key(given: str | None, expected: str | None) -> bool:
    """Is `given` CRM_API_KEY? Always asked first: it needs no key ring."""
    return bool(expected and given and keys_match(given, expected))


def _key_scope(given: str | None, expected: str | None, keyring: KeyRing | None) -> str | None:
    """CRM_API_KEY: every workspace; a workspace key: its workspace; anything else: 401."""
    if is_deployment_key(given, expected):
        return EVERY_WORKSPACE
    workspace = keyring.workspace_of(given) if keyring is not None else None
    if workspace is None:
        raise Unauthorized()
    return workspace


def check_api_key_for_convex(given: str | None, expected: str | None, keyring: KeyRing) -> str | None:
    """`check_api_key` for the Convex route, which never waits on PostgreSQL (docs/contract.md §11, §13).

    Keys are judged from the key ring this process holds (refreshed in the background); a
    well-formed key it does not know goes on to Convex, which holds the same hashes (revocations
    included) and answers 401 for a wrong key or workspace. Only a process that never loaded its
    ring asks PostgreSQL first, and passes the key on if PostgreSQL cannot answer.
    """
    if is_deployment_key(given, expected):
        return EVERY_WORKSPACE
    if not keyring.loaded:
        try:
            return check_api_key(given, expected, keyring)
        except (BackendUnavailable, BackendTimeout):
            return _judged_by_convex(given)
    if not expected and not keyring.any_active(wait=False):
        raise NotConfigured()
    return keyring.known_workspace_of(given) or _judged_by_convex(given)


def _judged_by_convex(given: str | None) -> str:
    if not well_formed(given):
        raise Unauthorized()
    return JUDGED_BY_CONVEX


def check_scope(scope: str | None, workspace_id: str) -> None:
    """A workspace key asking for another workspace: the same 401 as a wrong key, no hint
    whether that workspace exists."""
    if scope is not EVERY_WORKSPACE and scope is not JUDGED_BY_CONVEX and not keys_match(workspace_id, scope):
        raise Unauthorized()


def _signature_matches(body: bytes, signature: str | None, secret: str) -> bool:
    if not signature:
        return False
    given = signature.strip().lower().removeprefix("sha256=")
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))


def check_webhook_auth(body: bytes, signature: str | None, given_key: str | None,
                       secret: str | None, api_key: str | None, keyring: KeyRing | None = None) -> str | None:
    """A valid HMAC-SHA256 signature of the raw body, CRM_API_KEY, or a workspace key (docs/contract.md
    §7, §13); returns the workspace whose events the delivery may store, or
    EVERY_WORKSPACE."""
    if not secret and not api_key and (keyring is None or not keyring.any_active()):
        raise NotConfigured()
    if secret and _signature_matches(body, signature, secret):
        return EVERY_WORKSPACE
    return _key_scope(given_key, api_key, keyring)


def operator_key(headers: Mapping[str, str]) -> str | None:
    """The key an operator's tool sends to /metrics and /verdict (docs/contract.md §15): `x-api-key`,
    `Authorization: Bearer <key>` (Prometheus's `authorization` setting) or the password of HTTP Basic
    auth (a browser's prompt; any user name)."""
    given = headers.get("x-api-key")
    if given:
        return given
    scheme, _, value = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def check_operator_key(headers: Mapping[str, str], expected: str | None) -> None:
    """Only CRM_API_KEY reads the service's metrics and verdict: a workspace key sees one workspace,
    and these add up all of them. Not configured: 500; anything else: 401."""
    if not expected:
        raise NotConfigured()
    if not is_deployment_key(operator_key(headers), expected):
        raise Unauthorized()
