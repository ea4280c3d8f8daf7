"""Kapso webhook payloads (SPEC section 7) read into plain events.

Three shapes arrive: a v2 event (event name in X-Webhook-Event), a batch of
v2 events, and Meta's raw `whatsapp_business_account` delivery. Each becomes
a list of MessageEvent / StatusEvent / Ignored, in payload order; storing
them is the store's business. convex/convex/kapso.ts reads the same shapes the
same way, and both run contract/webhook_scenario.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATUS_EVENTS = {"whatsapp.message.delivered", "whatsapp.message.read", "whatsapp.message.failed"}
MESSAGE_EVENTS = {"whatsapp.message.received": "inbound", "whatsapp.message.sent": "outbound"}


class UnsupportedPayload(ValueError):
    """The body is JSON, but none of the shapes Kontak reads."""


@dataclass(frozen=True)
class MessageEvent:
    phone_number_id: str | None
    phone: str | None  # E.164 or WhatsApp digits, as Kapso sent it
    contact_name: str | None
    kapso_message_id: str
    direction: str
    content: str
    message_type: str
    status: str
    created_at_ms: int


@dataclass(frozen=True)
class StatusEvent:
    phone_number_id: str | None
    kapso_message_id: str
    status: str


@dataclass(frozen=True)
class Ignored:
    reason: str


Event = MessageEvent | StatusEvent | Ignored


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A JSON array, or nothing: a string or object where a list belongs is not iterated."""
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _timestamp_ms(value: Any) -> int | None:
    """WhatsApp times are Unix seconds, as a string or a number."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 < seconds < 1e11:
        return None
    return round(seconds * 1000)


def readable_content(message: dict[str, Any]) -> str:
    """What a person would read for this WhatsApp message, whatever its type.

    NUL characters are dropped: PostgreSQL text cannot hold them, and both
    backends must store the same content.
    """
    return _describe(message).replace("\x00", "")


def _describe(message: dict[str, Any]) -> str:
    kind = _text(message.get("type")) or "message"
    part = _dict(message.get(kind))
    if kind == "text":
        return _text(part.get("body")) or ""
    if kind in ("image", "video", "document") and _text(part.get("caption")):
        return part["caption"]
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


def _v2_event(event: str | None, payload: dict[str, Any]) -> Event:
    message = _dict(payload.get("message"))
    conversation = _dict(payload.get("conversation"))
    phone_number_id = _text(payload.get("phone_number_id")) or _text(conversation.get("phone_number_id"))
    kapso = _dict(message.get("kapso"))
    message_id = _text(message.get("id"))
    if event is None and message:
        event = "whatsapp.message.received" if kapso.get("direction") != "outbound" else "whatsapp.message.sent"
    if event in STATUS_EVENTS:
        if message_id is None:
            return Ignored("status without a message id")
        return StatusEvent(phone_number_id, message_id, event.rsplit(".", 1)[1])
    if event not in MESSAGE_EVENTS:
        return Ignored(f"event {event or 'unknown'}")
    direction = kapso.get("direction") if kapso.get("direction") in ("inbound", "outbound") else MESSAGE_EVENTS[event]
    counterpart = message.get("from") if direction == "inbound" else message.get("to")
    created_at_ms = _timestamp_ms(message.get("timestamp"))
    if message_id is None or created_at_ms is None:
        return Ignored("message without an id or a time")
    return MessageEvent(
        phone_number_id=phone_number_id,
        phone=_text(conversation.get("phone_number")) or _text(counterpart),
        contact_name=_text(_dict(conversation.get("kapso")).get("contact_name")),
        kapso_message_id=message_id,
        direction=direction,
        content=readable_content(message),
        message_type=_text(message.get("type")) or "text",
        status=_text(kapso.get("status")) or ("received" if direction == "inbound" else "sent"),
        created_at_ms=created_at_ms,
    )


def _meta_events(payload: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    for entry in _list(payload.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            value = _dict(_dict(change).get("value"))
            phone_number_id = _text(_dict(value.get("metadata")).get("phone_number_id"))
            names = {_text(_dict(c).get("wa_id")): _text(_dict(_dict(c).get("profile")).get("name"))
                     for c in _list(value.get("contacts"))}
            for raw in _list(value.get("messages")):
                message = _dict(raw)
                created_at_ms = _timestamp_ms(message.get("timestamp"))
                message_id = _text(message.get("id"))
                if message_id is None or created_at_ms is None:
                    events.append(Ignored("message without an id or a time"))
                    continue
                events.append(MessageEvent(
                    phone_number_id=phone_number_id, phone=_text(message.get("from")),
                    contact_name=names.get(_text(message.get("from"))), kapso_message_id=message_id,
                    direction="inbound", content=readable_content(message),
                    message_type=_text(message.get("type")) or "text", status="received",
                    created_at_ms=created_at_ms,
                ))
            for raw in _list(value.get("statuses")):
                status = _dict(raw)
                if _text(status.get("id")) and _text(status.get("status")):
                    events.append(StatusEvent(phone_number_id, status["id"], status["status"]))
                else:
                    events.append(Ignored("status without an id"))
    return events


def parse_delivery(payload: Any, event_header: str | None, batch_header: str | None) -> list[Event]:
    """The events of one webhook request body, or UnsupportedPayload."""
    if not isinstance(payload, dict):
        raise UnsupportedPayload()
    if payload.get("object") == "whatsapp_business_account" and isinstance(payload.get("entry"), list):
        return _meta_events(payload)
    is_batch = payload.get("batch") is True or (batch_header or "").lower() == "true"
    if is_batch:
        if not isinstance(payload.get("data"), list):
            raise UnsupportedPayload()
        event = _text(event_header) or _text(payload.get("type"))
        return [_v2_event(event, _dict(item)) for item in payload["data"]]
    if isinstance(payload.get("message"), dict) or isinstance(payload.get("conversation"), dict):
        return [_v2_event(_text(event_header), payload)]
    raise UnsupportedPayload()
