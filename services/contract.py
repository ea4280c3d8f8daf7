"""contract/: the rules both backends share, read once per process (docs/contract.md, docs/webhook.md).

`limits()` is contract/limits.json (notes and messages per lookup, body cap, key batch, the largest text a
note or message may hold, Convex paths);
`rules()` is contract/webhook_rules.json (what both webhooks judge a delivery by); `formats()` is
contract/formats.json (the identifier and key patterns). The Convex
functions read the same files, so a number changes in one place for both; tests/test_contract.py
checks that Python uses each value from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

CONTRACT_DIR = Path(__file__).resolve().parent.parent / "contract"
LIMITS_FILE = CONTRACT_DIR / "limits.json"
RULES_FILE = CONTRACT_DIR / "webhook_rules.json"
FORMATS_FILE = CONTRACT_DIR / "formats.json"


@dataclass(frozen=True)
class Limits:
    notes_limit: int
    messages_limit: int
    max_body_bytes: int
    key_batch_size: int
    max_text_bytes: int
    convex_paths: MappingProxyType[str, str]


@lru_cache(maxsize=1)
def limits() -> Limits:
    """contract/limits.json, read once per process."""
    data = json.loads(LIMITS_FILE.read_text(encoding="utf-8"))
    return Limits(notes_limit=int(data["notes_limit"]), messages_limit=int(data["messages_limit"]),
                  max_body_bytes=int(data["max_body_bytes"]), key_batch_size=int(data["key_batch_size"]),
                  max_text_bytes=int(data["max_text_bytes"]), convex_paths=MappingProxyType(dict(data["convex_paths"])))


@dataclass(frozen=True)
class WebhookRules:
    max_id_length: int
    max_type_length: int
    max_challenge_length: int
    min_timestamp_seconds: int
    max_future_seconds: int
    summary_prefix_chars: int
    max_body_bytes: int
    transaction_attempts: int
    meta_statuses: frozenset[str]
    known_message_statuses: frozenset[str]
    status_rank: MappingProxyType[str, int]
    failed_allowed_below_rank: int
    message_events: MappingProxyType[str, str]
    status_events: MappingProxyType[str, str]
    ignore_reasons: frozenset[str]
    bsuid_pattern: str
    parent_bsuid_pattern: str
    max_error_title_length: int
    conversation_events: MappingProxyType[str, str]
    identity_changes: MappingProxyType[str, str]
    json_max_depth: int
    max_events_per_delivery: int


def _rules_from_json(data: dict[str, Any]) -> WebhookRules:
    return WebhookRules(
        max_id_length=int(data["max_id_length"]),
        max_type_length=int(data["max_type_length"]),
        max_challenge_length=int(data["max_challenge_length"]),
        min_timestamp_seconds=int(data["min_timestamp_seconds"]),
        max_future_seconds=int(data["max_future_seconds"]),
        summary_prefix_chars=int(data["summary_prefix_chars"]),
        max_body_bytes=int(data["max_body_bytes"]),
        transaction_attempts=int(data["transaction_attempts"]),
        meta_statuses=frozenset(data["meta_statuses"]),
        known_message_statuses=frozenset(data["known_message_statuses"]),
        status_rank=MappingProxyType(dict(data["status_rank"])),
        failed_allowed_below_rank=int(data["failed_allowed_below_rank"]),
        message_events=MappingProxyType(dict(data["message_events"])),
        status_events=MappingProxyType(dict(data["status_events"])),
        ignore_reasons=frozenset(data["ignore_reasons"]),
        bsuid_pattern=str(data["bsuid_pattern"]),
        parent_bsuid_pattern=str(data["parent_bsuid_pattern"]),
        max_error_title_length=int(data["max_error_title_length"]),
        conversation_events=MappingProxyType(dict(data["conversation_events"])),
        identity_changes=MappingProxyType(dict(data["identity_changes"])),
        json_max_depth=int(data["json_max_depth"]),
        max_events_per_delivery=int(data["max_events_per_delivery"]),
    )


@lru_cache(maxsize=1)
def rules() -> WebhookRules:
    """contract/webhook_rules.json, read once per process."""
    return _rules_from_json(json.loads(RULES_FILE.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Formats:
    uuid: str
    e164: str
    api_key: str
    auth_order: MappingProxyType[str, tuple[str, ...]]


@lru_cache(maxsize=1)
def formats() -> Formats:
    """contract/formats.json (UUID, E.164 and key patterns, the order credentials are tried in), read once."""
    data = json.loads(FORMATS_FILE.read_text(encoding="utf-8"))
    return Formats(uuid=data["uuid"], e164=data["e164"], api_key=data["api_key"],
                   auth_order=MappingProxyType({k: tuple(v) for k, v in data["auth_order"].items()}))
