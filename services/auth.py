"""The API-key check shared by every protected route (SPEC section 3)."""

from __future__ import annotations

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
