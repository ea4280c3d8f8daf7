"""Kapso webhook payloads read into plain events, and judged one by one (docs/webhook.md §2-§3).

Any JSON object becomes a list of events in payload order: MessageEvent,
StatusEvent or Ignored. Reading never fails and never decides on storage;
`judge` then applies the per-event checks of §3 (the workspace comes from
the caller, who owns the database). convex/convex/kapso.ts reads and judges
the same shapes by the same rules, and both replay the contract corpus.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.contract import rules
from services.phones import InvalidPhone, normalize_phone

logger = logging.getLogger("kontak")

# Statuses a Meta `statuses[]` entry may carry (§3 invalid_status): contract/webhook_rules.json.
META_STATUSES = rules().meta_statuses
_SURROGATE = re.compile("[\ud800-\udfff]")
# §3: optional sign, digits, optional fraction, optional exponent, ASCII whitespace around.
_DECIMAL = re.compile(r"[ \t\n\r\f\v]*[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*")


class BodyNotObject(ValueError):
    """Valid JSON, but not an object: the only body shape Kontak refuses (400)."""


@dataclass(frozen=True)
class MessageEvent:
    """A message as read, not yet judged: ids, time, type and phone are raw."""

    phone_number_id: str | None
    phone: str | None
    contact_name: str | None  # cleaned; None when blank
    kapso_message_id: str | None
    timestamp: Any
    message_type: str | None  # None: absent, read as "text"
    direction: str
    content: str  # cleaned
    status: str


@dataclass(frozen=True)
class StatusEvent:
    phone_number_id: str | None
    kapso_message_id: str | None
    status: str | None  # v2: from the event name; Meta: as sent, checked last


@dataclass(frozen=True)
class Ignored:
    reason: str  # one of webhook_rules.json "ignore_reasons"


Event = MessageEvent | StatusEvent | Ignored


@dataclass(frozen=True)
class ValidMessage:
    """A message event that passed §3: ready to store."""

    workspace_id: str
    phone: str  # E.164
    contact_name: str | None
    kapso_message_id: str
    created_at_ms: int
    message_type: str
    direction: str
    content: str
    status: str


@dataclass(frozen=True)
class ValidStatus:
    """A status event whose workspace and id passed §3; message and status are the store's to check."""

    workspace_id: str
    kapso_message_id: str
    status: str | None


# -- small readers -----------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A JSON array, or nothing: a string or object where a list belongs is not iterated."""
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A non-blank string (§2), else None: any other JSON type counts as absent."""
    return value if isinstance(value, str) and value.strip() else None


def _first(*values: Any) -> str | None:
    return next((text for text in map(_text, values) if text is not None), None)


def clean_text(value: str) -> str:
    """NUL removed, unpaired surrogates replaced by U+FFFD (§4).

    json.loads keeps a lone `\\udXXX` escape as that code point; PostgreSQL
    could not store it, nor NUL, and both backends must hold the same text.
    """
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def _name(value: str | None) -> str | None:
    """A contact name, cleaned; blank once cleaned counts as no name."""
    return _text(clean_text(value)) if value is not None else None


def is_valid_identifier(value: str | None, max_length: int | None = None) -> bool:
    """1..max_id_length code points, not blank, no NUL, no unpaired surrogate (§3)."""
    limit = rules().max_id_length if max_length is None else max_length
    return (value is not None and 0 < len(value) <= limit and not value.isspace()
            and "\x00" not in value and _SURROGATE.search(value) is None)


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
    limits = rules()
    if not math.isfinite(seconds) or seconds < limits.min_timestamp_seconds:
        return None
    if seconds * 1000 > now_ms + limits.max_future_seconds * 1000:
        return None
    return round(seconds * 1000)  # Python's round is half-even


# -- content -----------------------------------------------------------------


def readable_content(message: dict[str, Any]) -> str:
    """What a person would read for this WhatsApp message, whatever its type (§4), cleaned."""
    return clean_text(_describe(message))


def _describe(message: dict[str, Any]) -> str:
    kind = _text(message.get("type")) or "text"
    part = _dict(message.get(kind))
    kapso = _dict(message.get("kapso"))
    if kind == "text":
        return _text(part.get("body")) or _text(kapso.get("content")) or ""
    if kind in ("image", "video", "document") and _text(part.get("caption")):
        return part["caption"]
    if kind == "audio":
        transcript = kapso.get("transcript")
        return (_text(transcript) or _text(_dict(transcript).get("text"))
                or _text(kapso.get("content")) or "[Audio]")
    if kind == "document":
        filename = _text(part.get("filename"))
        return f"[Document: {filename}]" if filename else "[Document]"
    if kind == "location":
        name = _text(part.get("name"))
        return f"[Location: {name}]" if name else "[Location]"
    if kind == "reaction":
        emoji = _text(part.get("emoji"))
        return f"[Reaction: {emoji}]" if emoji else "[Reaction]"
    if kind == "interactive":
        reply = _dict(part.get("button_reply")) or _dict(part.get("list_reply"))
        return _text(reply.get("title")) or "[Interactive]"
    if kind == "button":
        return _text(part.get("text")) or "[Button]"
    if kind == "contacts":
        return "[Contact]"
    return f"[{kind[:1].upper()}{kind[1:]}]"


# -- shapes -> events (§2) ------------------------------------------------------


def _event(name: str | None, body: dict[str, Any]) -> Event:
    """A v2 event, or an older (v1) one wrapped in `data`, given its event name (§2.3)."""
    if not isinstance(body.get("message"), dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    message = _dict(body.get("message"))
    conversation = _dict(body.get("conversation"))
    kapso = _dict(message.get("kapso"))
    phone_number_id = _first(body.get("phone_number_id"), conversation.get("phone_number_id"),
                             kapso.get("phone_number_id"), _dict(body.get("whatsapp_config")).get("phone_number_id"))
    limits = rules()
    if name in limits.status_events:
        return StatusEvent(phone_number_id, _text(message.get("id")), limits.status_events[name])
    if name in limits.message_events:
        direction = limits.message_events[name]
    elif name is None and message:
        direction = "inbound"
    else:
        return Ignored("unknown_event")
    if kapso.get("direction") in ("inbound", "outbound"):
        direction = kapso["direction"]
    status = kapso.get("status")
    if not isinstance(status, str) or status not in limits.known_message_statuses:
        status = "received" if direction == "inbound" else "sent"
    return MessageEvent(
        phone_number_id=phone_number_id,
        phone=_first(conversation.get("phone_number"), message.get("from" if direction == "inbound" else "to")),
        contact_name=_name(_first(_dict(conversation.get("kapso")).get("contact_name"),
                                  conversation.get("contact_name"))),
        kapso_message_id=_text(message.get("id")),
        timestamp=message.get("timestamp"),
        message_type=_text(message.get("type")),
        direction=direction,
        content=readable_content(message),
        status=status,
    )


def _meta_change(value: dict[str, Any]) -> list[Event]:
    """One Meta `changes[].value` (§2.1)."""
    phone_number_id = _text(_dict(value.get("metadata")).get("phone_number_id"))
    contacts = _list(value.get("contacts"))
    names = {_text(_dict(c).get("wa_id")): _text(_dict(_dict(c).get("profile")).get("name")) for c in contacts}
    only_wa_id = _text(_dict(contacts[0]).get("wa_id")) if len(contacts) == 1 else None
    messages, statuses = _list(value.get("messages")), _list(value.get("statuses"))
    events: list[Event] = []
    for raw in messages:
        message = _dict(raw)
        phone = _text(message.get("from")) or only_wa_id
        events.append(MessageEvent(
            phone_number_id=phone_number_id, phone=phone,
            contact_name=_name(names.get(phone) if phone is not None else None),
            kapso_message_id=_text(message.get("id")), timestamp=message.get("timestamp"),
            message_type=_text(message.get("type")), direction="inbound",
            content=readable_content(message), status="received",
        ))
    for raw in statuses:
        status = _dict(raw)
        events.append(StatusEvent(phone_number_id, _text(status.get("id")), _text(status.get("status"))))
    return events or [Ignored("no_message")]


def _meta_events(payload: dict[str, Any]) -> list[Event]:
    return [event
            for entry in _list(payload.get("entry"))
            for change in _list(_dict(entry).get("changes"))
            for event in _meta_change(_dict(_dict(change).get("value")))]


def parse_delivery(payload: Any, event_header: str | None, batch_header: str | None) -> list[Event]:
    """The events of one request body, in payload order; never empty.

    Raises BodyNotObject for JSON that is not an object; every object is read.
    """
    if not isinstance(payload, dict):
        raise BodyNotObject()
    if payload.get("object") == "whatsapp_business_account":
        events = _meta_events(payload)
    elif payload.get("batch") is True or (batch_header or "").lower() == "true":
        name = _first(event_header, payload.get("type"))
        events = [_event(name, _dict(item)) for item in _list(payload.get("data"))]
    else:
        events = [_event(_first(event_header, payload.get("event"), payload.get("type")), payload)]
    # A delivery that yields nothing is still one ignored event: the answer's counts are never all 0.
    return events or [Ignored("no_message")]


# -- judging one event (§3) -------------------------------------------------------


def judge(event: Event, workspace_of: Callable[[str], str | None], region: str, now_ms: int,
          allowed_workspace: str | None = None) -> ValidMessage | ValidStatus | Ignored:
    """The first §3 check `event` fails, as Ignored, or the event ready to store.

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
    if not is_valid_identifier(event.kapso_message_id):
        return Ignored("invalid_message_id")
    if isinstance(event, StatusEvent):
        return ValidStatus(workspace_id, event.kapso_message_id, event.status)
    return _judge_message(event, workspace_id, region, now_ms)


def _judge_message(event: MessageEvent, workspace_id: str, region: str, now_ms: int) -> ValidMessage | Ignored:
    created_at_ms = timestamp_ms(event.timestamp, now_ms)
    if created_at_ms is None:
        return Ignored("invalid_timestamp")
    if event.message_type is not None and not is_valid_identifier(event.message_type, rules().max_type_length):
        return Ignored("invalid_type")
    try:
        phone = normalize_phone(event.phone or "", region)
    except InvalidPhone:
        return Ignored("invalid_phone")
    return ValidMessage(
        workspace_id=workspace_id, phone=phone, contact_name=event.contact_name,
        kapso_message_id=event.kapso_message_id, created_at_ms=created_at_ms,
        message_type=event.message_type or "text", direction=event.direction,
        content=event.content, status=event.status,
    )


def log_ignored(reason: str) -> None:
    """One line per ignored event, naming only the reason: never content, phone or ids."""
    logger.warning("webhook event ignored reason=%s", reason)
