"""The API-key check shared by every protected route (SPEC section 3)."""

from __future__ import annotations

import hashlib
import hmac

from services.errors import NotConfigured, Unauthorized


def keys_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison: the time taken says nothing about the key."""
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


def check_api_key(given: str | None, expected: str | None) -> None:
    """Raise unless `given` is the configured key; configuration is checked first."""
    if not expected:
        raise NotConfigured()
    if not keys_match(given, expected):
        raise Unauthorized()


def _signature_matches(body: bytes, signature: str | None, secret: str) -> bool:
    if not signature:
        return False
    given = signature.strip().lower().removeprefix("sha256=")
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))


def check_webhook_auth(body: bytes, signature: str | None, given_key: str | None,
                       secret: str | None, api_key: str | None) -> None:
    """A valid HMAC-SHA256 signature of the raw body, or the API key (SPEC section 7)."""
    if not secret and not api_key:
        raise NotConfigured()
    if secret and _signature_matches(body, signature, secret):
        return
    if api_key and given_key and keys_match(given_key, api_key):
        return
    raise Unauthorized()
