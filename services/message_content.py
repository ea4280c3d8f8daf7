"""What a person would read for a WhatsApp message, whatever its type (docs/webhook.md §4, §7.8).

convex/convex/kapso.ts `readableContent` applies the same rules; both replay the contract corpus.
"""

from __future__ import annotations

import re
from typing import Any

from services.contract import limits

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TEXT_BYTES = limits().max_text_bytes


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """A JSON array, or nothing: a string or object where a list belongs is not iterated."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A non-blank string (§2), else None: any other JSON type counts as absent."""
    return value if isinstance(value, str) and value.strip() else None


def first_text(*values: Any) -> str | None:
    return next((found for found in map(text, values) if found is not None), None)


def clean_text(value: str) -> str:
    """NUL removed, unpaired surrogates replaced by U+FFFD, cut to `max_text_bytes` of UTF-8 (§4).

    json.loads keeps a lone `\\udXXX` escape as that code point; PostgreSQL
    could not store it, nor NUL, and both backends must hold the same text.
    The cut keeps every stored row within one Convex document.
    """
    cleaned = _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if len(cleaned) * 4 <= MAX_TEXT_BYTES:  # cannot be over: no encoding needed
        return cleaned
    return cleaned.encode("utf-8")[:MAX_TEXT_BYTES].decode("utf-8", "ignore")


def has_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def message_kind(message: dict[str, Any]) -> str:
    """`message.type`, else the v1 `message.message_type`, else `text` (§7.8)."""
    return first_text(message.get("type"), message.get("message_type")) or "text"


def readable_content(message: dict[str, Any]) -> str:
    """The message's readable text, cleaned."""
    return clean_text(_describe(message))


def _labelled(label: str, value: str | None) -> str:
    return f"[{label}: {value}]" if value else f"[{label}]"


def _describe(message: dict[str, Any]) -> str:
    kind = message_kind(message)
    part = as_dict(message.get(kind))
    kapso = as_dict(message.get("kapso"))
    if kind == "text":
        return first_text(part.get("body"), kapso.get("content"), message.get("content")) or ""
    if kind in ("image", "video", "document") and text(part.get("caption")):
        return part["caption"]
    if kind == "audio":
        transcript = kapso.get("transcript")
        return first_text(transcript, as_dict(transcript).get("text"), kapso.get("content")) or "[Audio]"
    return _describe_labelled(kind, part)


def _describe_labelled(kind: str, part: dict[str, Any]) -> str:
    if kind == "document":
        return _labelled("Document", text(part.get("filename")))
    if kind == "location":
        return _labelled("Location", text(part.get("name")))
    if kind == "reaction":
        return _labelled("Reaction", text(part.get("emoji")))
    if kind == "template":
        return _labelled("Template", text(part.get("name")))
    if kind == "interactive":
        return first_text(as_dict(part.get("button_reply")).get("title"), as_dict(part.get("list_reply")).get("title"),
                          as_dict(part.get("nfm_reply")).get("body")) or "[Interactive]"
    if kind == "order":
        return text(part.get("text")) or "[Order]"
    if kind == "button":
        return text(part.get("text")) or "[Button]"
    if kind == "system":
        return text(part.get("body")) or "[System]"
    if kind == "contacts":
        return "[Contact]"
    return f"[{kind[:1].upper()}{kind[1:]}]"
