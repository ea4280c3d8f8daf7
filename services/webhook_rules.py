"""contract/webhook_rules.json: the numbers both webhooks judge a delivery by (docs/webhook.md).

The Convex functions read the same file, so a limit changes in one place for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

RULES_FILE = Path(__file__).resolve().parent.parent / "contract" / "webhook_rules.json"


@dataclass(frozen=True)
class WebhookRules:
    max_id_length: int
    max_type_length: int
    min_timestamp_seconds: int
    max_future_seconds: int
    summary_prefix_chars: int
    max_body_bytes: int
    transaction_attempts: int
    known_message_statuses: frozenset[str]
    status_rank: MappingProxyType[str, int]
    failed_allowed_below_rank: int
    message_events: MappingProxyType[str, str]
    status_events: MappingProxyType[str, str]
    ignore_reasons: frozenset[str]


def _from_json(data: dict[str, Any]) -> WebhookRules:
    return WebhookRules(
        max_id_length=int(data["max_id_length"]),
        max_type_length=int(data["max_type_length"]),
        min_timestamp_seconds=int(data["min_timestamp_seconds"]),
        max_future_seconds=int(data["max_future_seconds"]),
        summary_prefix_chars=int(data["summary_prefix_chars"]),
        max_body_bytes=int(data["max_body_bytes"]),
        transaction_attempts=int(data["transaction_attempts"]),
        known_message_statuses=frozenset(data["known_message_statuses"]),
        status_rank=MappingProxyType(dict(data["status_rank"])),
        failed_allowed_below_rank=int(data["failed_allowed_below_rank"]),
        message_events=MappingProxyType(dict(data["message_events"])),
        status_events=MappingProxyType(dict(data["status_events"])),
        ignore_reasons=frozenset(data["ignore_reasons"]),
    )


@lru_cache(maxsize=1)
def rules() -> WebhookRules:
    """The rules, read once per process."""
    return _from_json(json.loads(RULES_FILE.read_text(encoding="utf-8")))
