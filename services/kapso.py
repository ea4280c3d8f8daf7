"""Kapso webhook payloads read into plain events (docs/webhook.md §2, §7).

Any JSON object becomes a list of events in payload order. Reading never
fails and never decides on storage: services/webhook_judge.py applies the
per-event checks. convex/convex/kapso.ts reads the same shapes by the same
rules, and both replay the contract corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.contract import rules
from services.identity import is_valid_identifier
from services.message_content import (
    as_dict,
    as_list,
    clean_text,
    first_text,
    message_kind,
    readable_content,
    text,
)


class BodyNotObject(ValueError):
    """Valid JSON, but not an object: the only body shape Kontak refuses (400)."""


class TooManyEvents(ValueError):
    """More events than `max_events_per_delivery` in one delivery (413, docs/webhook.md §1)."""


@dataclass(frozen=True)
class Identity:
    """Who an event names, as read (§7.2): raw strings, not yet judged."""

    phone: str | None = None
    bsuid: str | None = None
    parent_bsuid: str | None = None
    username: str | None = None  # cleaned


@dataclass(frozen=True)
class FailureError:
    """A failure's error code and title (§7.7), already in their stored form."""

    code: str | None = None
    title: str | None = None


NO_ERROR = FailureError()


@dataclass(frozen=True)
class MessageEvent:
    """A message as read, not yet judged: ids, time, type and identity are raw."""

    phone_number_id: str | None
    identity: Identity
    contact_name: str | None  # cleaned; None when blank
    kapso_message_id: str | None
    timestamp: Any
    message_type: str | None  # None: absent, read as "text"
    direction: str
    content: str  # cleaned
    status: str
    error: FailureError = NO_ERROR


@dataclass(frozen=True)
class StatusEvent:
    phone_number_id: str | None
    kapso_message_id: str | None
    status: str | None  # v2: from the event name; Meta: as sent, checked last
    error: FailureError = NO_ERROR
    # For `failed`: the outbound message it becomes when the id was never stored (§7.7).
    unseen: MessageEvent | None = None


@dataclass(frozen=True)
class IdentityChange:
    """A `system` message moving a phone or a BSUID to a new value (§7.6)."""

    phone_number_id: str | None
    identity: Identity  # the old one
    kapso_message_id: str | None
    timestamp: Any
    message_type: str | None
    field: str  # "phone" or "bsuid"
    new_value: str | None


@dataclass(frozen=True)
class ConversationEvent:
    """whatsapp.conversation.created / .ended / .inactive (§7.7)."""

    phone_number_id: str | None
    identity: Identity
    status: str
    time: str | None  # ISO 8601, raw


@dataclass(frozen=True)
class Ignored:
    reason: str  # one of webhook_rules.json "ignore_reasons"


Event = MessageEvent | StatusEvent | IdentityChange | ConversationEvent | Ignored


def _name(value: str | None) -> str | None:
    """A contact name or username, cleaned; blank once cleaned counts as none."""
    return text(clean_text(value)) if value is not None else None


def failure_error(errors: Any) -> FailureError:
    """The first entry of an `errors` list (§7.7)."""
    entry = as_dict(as_list(errors)[0]) if as_list(errors) else {}
    code, title = entry.get("code"), text(entry.get("title"))
    limits = rules()
    if isinstance(code, bool) or not (isinstance(code, int) and abs(code) < 2**53
                                      or isinstance(code, str) and is_valid_identifier(code)):
        code = None
    if title is not None:
        title = clean_text(title)[:limits.max_error_title_length]
    return FailureError(None if code is None else str(code), title)


# -- v2 / v1 events ---------------------------------------------------------------


def _v2_identity(message: dict[str, Any], conversation: dict[str, Any], direction: str) -> Identity:
    inbound = direction == "inbound"
    return Identity(
        phone=first_text(conversation.get("phone_number"), message.get("from" if inbound else "to")),
        bsuid=first_text(conversation.get("business_scoped_user_id"), message.get("business_scoped_user_id"),
                         message.get("from_user_id" if inbound else "to_user_id")),
        parent_bsuid=first_text(conversation.get("parent_business_scoped_user_id"),
                                message.get("parent_business_scoped_user_id")),
        username=_name(first_text(conversation.get("username"), message.get("username"))),
    )


def _direction(default: str, kapso: dict[str, Any]) -> str:
    given = kapso.get("direction")
    return given if given in ("inbound", "outbound") else default


def _status(kapso: dict[str, Any], direction: str) -> str:
    status = kapso.get("status")
    if isinstance(status, str) and status in rules().known_message_statuses:
        return status
    return "received" if direction == "inbound" else "sent"


def _v2_message(phone_number_id: str | None, message: dict[str, Any], conversation: dict[str, Any],
                direction: str, status: str | None = None) -> MessageEvent | IdentityChange:
    identity = _v2_identity(message, conversation, direction)
    change = _identity_change(phone_number_id, identity, message)
    if change is not None:
        return change
    status = status or _status(as_dict(message.get("kapso")), direction)
    return MessageEvent(
        phone_number_id=phone_number_id, identity=identity,
        contact_name=_name(first_text(as_dict(conversation.get("kapso")).get("contact_name"),
                                      conversation.get("contact_name"))),
        kapso_message_id=text(message.get("id")), timestamp=message.get("timestamp"),
        message_type=first_text(message.get("type"), message.get("message_type")), direction=direction,
        content=readable_content(message), status=status,
        error=failure_error(message.get("errors")) if status == "failed" else NO_ERROR,
    )


def _event(name: str | None, body: dict[str, Any]) -> Event:
    """A v2 event, or an older (v1) one wrapped in `data`, given its event name (§2.3)."""
    if not isinstance(body.get("message"), dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    message = as_dict(body.get("message"))
    conversation = as_dict(body.get("conversation"))
    kapso = as_dict(message.get("kapso"))
    phone_number_id = first_text(body.get("phone_number_id"), conversation.get("phone_number_id"),
                                 kapso.get("phone_number_id"),
                                 as_dict(body.get("whatsapp_config")).get("phone_number_id"))
    limits = rules()
    if name in limits.status_events:
        status = limits.status_events[name]
        unseen = _v2_message(phone_number_id, message, conversation, "outbound", "failed")
        return StatusEvent(phone_number_id, text(message.get("id")), status, failure_error(message.get("errors")),
                           unseen if status == "failed" and isinstance(unseen, MessageEvent) else None)
    if name in limits.conversation_events:
        return ConversationEvent(phone_number_id, _v2_identity({}, conversation, "inbound"),
                                 limits.conversation_events[name],
                                 first_text(conversation.get("updated_at"), conversation.get("last_active_at")))
    if name in limits.message_events:
        direction = limits.message_events[name]
    elif name is None and message:
        direction = "inbound"
    else:
        return Ignored("unknown_event")
    return _v2_message(phone_number_id, message, conversation, _direction(direction, kapso))


def _identity_change(phone_number_id: str | None, identity: Identity,
                     message: dict[str, Any]) -> IdentityChange | None:
    """A `system` message of a type in `identity_changes`, else None (§7.6)."""
    if message_kind(message) != "system":
        return None
    system = as_dict(message.get("system"))
    field = rules().identity_changes.get(system.get("type")) if isinstance(system.get("type"), str) else None
    if field is None:
        return None
    return IdentityChange(phone_number_id, identity, text(message.get("id")), message.get("timestamp"),
                          first_text(message.get("type"), message.get("message_type")), field,
                          text(system.get("wa_id" if field == "phone" else "user_id")))


# -- Meta raw ---------------------------------------------------------------------


def _matching_contact(contacts: list[Any], bsuid: str | None, phone: str | None) -> dict[str, Any]:
    """The `contacts[]` entry a Meta message belongs to (§7.2), or {}."""
    entries = [as_dict(c) for c in contacts]
    for key, wanted in (("user_id", bsuid), ("wa_id", phone)):
        if wanted is not None:
            # The last one: a later entry with the same id wins, as for names (§2.1).
            found = next((c for c in reversed(entries) if text(c.get(key)) == wanted), None)
            if found is not None:
                return found
    return entries[0] if len(entries) == 1 else {}


def _meta_message(phone_number_id: str | None, raw: Any, contacts: list[Any]) -> MessageEvent | IdentityChange:
    message = as_dict(raw)
    contact = _matching_contact(contacts, text(message.get("from_user_id")), text(message.get("from")))
    profile = as_dict(contact.get("profile"))
    identity = Identity(
        phone=first_text(message.get("from"), contact.get("wa_id")),
        bsuid=first_text(message.get("from_user_id"), contact.get("user_id")),
        parent_bsuid=first_text(message.get("from_parent_user_id"), contact.get("parent_user_id")),
        username=_name(text(profile.get("username"))),
    )
    change = _identity_change(phone_number_id, identity, message)
    if change is not None:
        return change
    return MessageEvent(
        phone_number_id=phone_number_id, identity=identity, contact_name=_name(text(profile.get("name"))),
        kapso_message_id=text(message.get("id")), timestamp=message.get("timestamp"),
        message_type=text(message.get("type")), direction="inbound", content=readable_content(message),
        status="received",
    )


def _meta_echo(phone_number_id: str | None, raw: Any) -> MessageEvent:
    """The business writing from the WhatsApp Business app: outbound, to the customer in `to` (§7.7)."""
    echo = as_dict(raw)
    return MessageEvent(
        phone_number_id=phone_number_id,
        identity=Identity(phone=text(echo.get("to")), bsuid=text(echo.get("to_user_id")),
                          parent_bsuid=text(echo.get("to_parent_user_id"))),
        contact_name=None, kapso_message_id=text(echo.get("id")), timestamp=echo.get("timestamp"),
        message_type=text(echo.get("type")), direction="outbound", content=readable_content(echo), status="sent",
    )


def _meta_status(phone_number_id: str | None, raw: Any) -> StatusEvent:
    status = as_dict(raw)
    name = text(status.get("status"))
    error = failure_error(status.get("errors"))
    unseen = None
    if name == "failed":
        unseen = MessageEvent(
            phone_number_id=phone_number_id,
            identity=Identity(phone=text(status.get("recipient_id")), bsuid=text(status.get("recipient_user_id")),
                              parent_bsuid=text(status.get("recipient_parent_user_id"))),
            contact_name=None, kapso_message_id=text(status.get("id")), timestamp=status.get("timestamp"),
            message_type="unknown", direction="outbound", content="", status="failed", error=error,
        )
    return StatusEvent(phone_number_id, text(status.get("id")), name, error, unseen)


def _meta_change(value: dict[str, Any]) -> list[Event]:
    """One Meta `changes[].value` (§2.1, §7.2)."""
    phone_number_id = text(as_dict(value.get("metadata")).get("phone_number_id"))
    contacts = as_list(value.get("contacts"))
    events: list[Event] = [_meta_message(phone_number_id, raw, contacts) for raw in as_list(value.get("messages"))]
    events += [_meta_echo(phone_number_id, raw) for raw in as_list(value.get("message_echoes"))]
    events += [_meta_status(phone_number_id, raw) for raw in as_list(value.get("statuses"))]
    return events or [Ignored("no_message")]


def _meta_events(payload: dict[str, Any]) -> list[Event]:
    return [event for value in _meta_changes(payload) for event in _meta_change(value)]


def _meta_changes(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [as_dict(as_dict(change).get("value"))
            for entry in as_list(payload.get("entry")) for change in as_list(as_dict(entry).get("changes"))]


def _is_batch(payload: dict[str, Any], batch_header: str | None) -> bool:
    return payload.get("batch") is True or (batch_header or "").lower() == "true"


def count_events(payload: dict[str, Any], batch_header: str | None) -> int:
    """How many events `parse_delivery` would read, counted without reading them."""
    if payload.get("object") == "whatsapp_business_account":
        return sum(max(1, sum(len(as_list(value.get(key))) for key in ("messages", "message_echoes", "statuses")))
                   for value in _meta_changes(payload))
    if _is_batch(payload, batch_header):
        return len(as_list(payload.get("data")))
    return 1


def parse_delivery(payload: Any, event_header: str | None, batch_header: str | None) -> list[Event]:
    """The events of one request body, in payload order; never empty.

    Raises BodyNotObject for JSON that is not an object, TooManyEvents over the cap.
    """
    if not isinstance(payload, dict):
        raise BodyNotObject()
    if count_events(payload, batch_header) > rules().max_events_per_delivery:
        raise TooManyEvents()
    if payload.get("object") == "whatsapp_business_account":
        events = _meta_events(payload)
    elif _is_batch(payload, batch_header):
        name = first_text(event_header, payload.get("type"))
        events = [_event(name, as_dict(item)) for item in as_list(payload.get("data"))]
    else:
        events = [_event(first_text(event_header, payload.get("event"), payload.get("type")), payload)]
    # A delivery that yields nothing is still one ignored event: the answer's counts are never all 0.
    return events or [Ignored("no_message")]
