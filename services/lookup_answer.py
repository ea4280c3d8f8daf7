"""The lookup answer of docs/contract.md §3, shaped the same for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.contract import limits
from services.conversation_summary import summarize_conversation

# contract/limits.json: both backends answer with at most this many notes, and summarise this many messages.
NOTES_LIMIT = limits().notes_limit
MESSAGES_LIMIT = limits().messages_limit
NOT_FOUND: dict[str, Any] = {"found": False, "context": None}


def format_timestamp(value: datetime | None) -> str | None:
    """UTC, millisecond precision, `Z` suffix: 2026-01-02T03:04:05.678Z."""
    if value is None:
        return None
    # isoformat of the UTC value, `+00:00` cut: one C call instead of strftime and a format.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True)
class ContactRecord:
    """What a backend knows about one contact, before shaping."""

    name: str | None
    kapso_name: str | None
    lead_status: str
    lead_score: int
    tags: list[str] | None
    created_at: datetime
    last_message_at: datetime | None
    notes_newest_first: list[str]
    messages_newest_first: list[str | None] | None
    username: str | None = None  # the last fallback of the answer's name (§4a)


def build_context(record: ContactRecord | None) -> dict[str, Any]:
    if record is None:
        return dict(NOT_FOUND)
    return {
        "found": True,
        "contact": {
            "name": record.name or record.kapso_name or record.username or None,
            "lead_status": record.lead_status,
            "lead_score": int(record.lead_score),
            "tags": list(record.tags or []),
            "is_returning": record.last_message_at is not None,
            "first_contact_date": format_timestamp(record.created_at),
        },
        "notes": list(record.notes_newest_first[:NOTES_LIMIT]),
        "conversation_summary": summarize_conversation(record.messages_newest_first),
        "last_interaction": format_timestamp(record.last_message_at),
    }
