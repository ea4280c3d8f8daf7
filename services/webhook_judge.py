"""Judging one read Kapso event (docs/webhook.md §3, §7.3): Ignored, or ready to store.

The workspace comes from the caller, who owns the database. convex/convex/kapso.ts
`prepareEvent` and the ingest mutation make the same checks in the same order.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contract import rules
from services.identity import is_valid_bsuid, is_valid_identifier, is_valid_parent_bsuid
from services.kapso import (
    ConversationEvent,
    Event,
    FailureError,
    Identity,
    IdentityChange,
    Ignored,
    MessageEvent,
    StatusEvent,
)
from services.phones import InvalidPhone, normalize_phone

logger = logging.getLogger("kontak")
# Statuses a Meta `statuses[]` entry may carry (§3 invalid_status): contract/webhook_rules.json.
META_STATUSES = rules().meta_statuses
# §3: optional sign, digits, optional fraction, optional exponent, ASCII whitespace around.
_DECIMAL = re.compile(r"[ \t\n\r\f\v]*[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*")
# §7.7: an ISO 8601 time with Z or an offset; the fraction is cut to milliseconds.
_ISO_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})", re.ASCII)


@dataclass(frozen=True)
class Person:
    """A judged identity: at least one of phone (E.164) and bsuid."""

    phone: str | None
    bsuid: str | None
    parent_bsuid: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class ValidMessage:
    """A message event that passed §3: ready to store."""

    workspace_id: str
    person: Person
    contact_name: str | None
    kapso_message_id: str
    created_at_ms: int
    message_type: str
    direction: str
    content: str
    status: str
    error: FailureError


@dataclass(frozen=True)
class ValidStatus:
    """A status whose workspace and id passed §3; message and status are the store's to check."""

    workspace_id: str
    kapso_message_id: str
    status: str | None
    error: FailureError
    unseen: ValidMessage | Ignored | None  # what a `failed` for an unknown id becomes (§7.7)


@dataclass(frozen=True)
class ValidIdentityChange:
    workspace_id: str
    person: Person  # the old identity
    field: str  # "phone" or "bsuid"
    new_value: str


@dataclass(frozen=True)
class ValidConversationEvent:
    workspace_id: str
    person: Person
    status: str
    at_ms: int


Judged = ValidMessage | ValidStatus | ValidIdentityChange | ValidConversationEvent | Ignored


def _in_range(ms: float, now_ms: int) -> bool:
    limits = rules()
    return ms >= limits.min_timestamp_seconds * 1000 and ms <= now_ms + limits.max_future_seconds * 1000


def timestamp_ms(value: Any, now_ms: int) -> int | None:
    """Unix seconds (JSON number or decimal string) -> ms, half-even; None when invalid (§3).

    The arithmetic is IEEE double, as in JavaScript, so both backends agree to the ms.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        return None
    try:
        seconds = float(value)
    except (OverflowError, ValueError):  # a 400-digit integer does not fit a double
        return None
    if not math.isfinite(seconds) or seconds < rules().min_timestamp_seconds:
        return None
    if seconds * 1000 > now_ms + rules().max_future_seconds * 1000:
        return None
    return round(seconds * 1000)  # Python's round is half-even


def iso_time_ms(value: str | None, now_ms: int) -> int | None:
    """An ISO 8601 time (§7.7) as ms since the epoch, fraction cut to ms; None when invalid."""
    match = _ISO_TIME.fullmatch(value) if value is not None else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        at = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:  # 2026-02-30, hour 24, …
        return None
    if zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        at = at - offset if zone[0] == "+" else at + offset
    ms = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) + int((fraction or "0")[:3].ljust(3, "0"))
    return ms if _in_range(ms, now_ms) else None


def judge_person(identity: Identity, region: str) -> Person | Ignored:
    """§7.3: a BSUID present must be valid, a phone present must be valid, one must be present."""
    if identity.bsuid is not None and not is_valid_bsuid(identity.bsuid):
        return Ignored("invalid_bsuid")
    phone = None
    if identity.phone is not None:
        try:
            phone = normalize_phone(identity.phone, region)
        except InvalidPhone:
            return Ignored("invalid_phone")
    if phone is None and identity.bsuid is None:
        return Ignored("invalid_phone")
    parent = identity.parent_bsuid if identity.parent_bsuid and is_valid_parent_bsuid(identity.parent_bsuid) else None
    username = identity.username if identity.username and len(identity.username) <= rules().max_id_length else None
    return Person(phone, identity.bsuid, parent, username)


def judge(event: Event, workspace_of: Callable[[str], str | None], region: str, now_ms: int,
          allowed_workspace: str | None = None) -> Judged:
    """The first check `event` fails, as Ignored, or the event ready to store.

    `workspace_of` maps a valid phone number id to its workspace (or None);
    `allowed_workspace` is set when a workspace key authenticated the delivery.
    """
    if isinstance(event, Ignored):
        return event
    if event.phone_number_id is not None and not is_valid_identifier(event.phone_number_id):
        return Ignored("invalid_phone_number_id")
    workspace_id = workspace_of(event.phone_number_id) if event.phone_number_id is not None else None
    if workspace_id is None:
        return Ignored("unknown_workspace")
    if allowed_workspace is not None and workspace_id != allowed_workspace:
        return Ignored("workspace_not_allowed")
    if isinstance(event, ConversationEvent):
        return _judge_conversation_event(event, workspace_id, region, now_ms)
    if not is_valid_identifier(event.kapso_message_id):
        return Ignored("invalid_message_id")
    if isinstance(event, StatusEvent):
        unseen = _judge_message(event.unseen, workspace_id, region, now_ms) if event.unseen is not None else None
        return ValidStatus(workspace_id, event.kapso_message_id, event.status, event.error, unseen)
    if isinstance(event, IdentityChange):
        return _judge_identity_change(event, workspace_id, region, now_ms)
    return _judge_message(event, workspace_id, region, now_ms)


def _time_type_and_person(timestamp: Any, message_type: str | None, identity: Identity, region: str,
                          now_ms: int) -> tuple[int, Person] | Ignored:
    """The checks of a message-like event in their order (§3, §7.3): time, type, identity."""
    created_at_ms = timestamp_ms(timestamp, now_ms)
    if created_at_ms is None:
        return Ignored("invalid_timestamp")
    if message_type is not None and not is_valid_identifier(message_type, rules().max_type_length):
        return Ignored("invalid_type")
    person = judge_person(identity, region)
    return person if isinstance(person, Ignored) else (created_at_ms, person)


def _judge_message(event: MessageEvent, workspace_id: str, region: str, now_ms: int) -> ValidMessage | Ignored:
    checked = _time_type_and_person(event.timestamp, event.message_type, event.identity, region, now_ms)
    if isinstance(checked, Ignored):
        return checked
    created_at_ms, person = checked
    return ValidMessage(
        workspace_id=workspace_id, person=person, contact_name=event.contact_name,
        kapso_message_id=event.kapso_message_id, created_at_ms=created_at_ms,
        message_type=event.message_type or "text", direction=event.direction,
        content=event.content, status=event.status, error=event.error,
    )


def _judge_identity_change(event: IdentityChange, workspace_id: str, region: str,
                           now_ms: int) -> ValidIdentityChange | Ignored:
    checked = _time_type_and_person(event.timestamp, event.message_type, event.identity, region, now_ms)
    if isinstance(checked, Ignored):
        return checked
    _, person = checked
    if event.field == "bsuid":
        if event.new_value is None or not is_valid_bsuid(event.new_value):
            return Ignored("invalid_bsuid")
        return ValidIdentityChange(workspace_id, person, "bsuid", event.new_value)
    try:
        return ValidIdentityChange(workspace_id, person, "phone", normalize_phone(event.new_value or "", region))
    except InvalidPhone:
        return Ignored("invalid_phone")


def _judge_conversation_event(event: ConversationEvent, workspace_id: str, region: str,
                              now_ms: int) -> ValidConversationEvent | Ignored:
    at_ms = iso_time_ms(event.time, now_ms)
    if at_ms is None:
        return Ignored("invalid_timestamp")
    person = judge_person(event.identity, region)
    if isinstance(person, Ignored):
        return person
    return ValidConversationEvent(workspace_id, person, event.status, at_ms)


def log_ignored(reasons: list[str]) -> None:
    """One line per reason a delivery's events were ignored for, with their count: never content,
    phone or ids, and a delivery of 100,000 empty events costs one line, not 100,000."""
    for reason, count in Counter(reasons).items():  # in order of first occurrence
        logger.warning("webhook events ignored reason=%s count=%d", reason, count)
