"""Kapso webhook deliveries as the benchmarks send them: one v2 event alone, or a v2 batch, signed the
way Kapso signs (hex HMAC-SHA256 of the raw body, docs/webhook.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

EVENT = "whatsapp.message.received"


def signed_headers(raw: bytes, secret: str, batch: bool) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Webhook-Event": EVENT,
               "X-Webhook-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}
    if batch:
        headers["X-Webhook-Batch"] = "true"
    return headers


def signed_delivery(events: list[dict[str, Any]], secret: str) -> tuple[bytes, dict[str, str]]:
    """(raw body, headers): the one event as it is, several as one batch."""
    body = events[0] if len(events) == 1 else {"type": EVENT, "batch": True, "data": events}
    raw = json.dumps(body).encode()
    return raw, signed_headers(raw, secret, len(events) > 1)
