"""Values of the original CRM read into what Kontak stores (db import-legacy; docs/own-data.md §3).

The CRM's columns are not always of the types Kontak's are: tags kept as text,
scores as text, arrays holding NULL, texts larger than one Convex document.
Each reader returns the value Kontak stores and, when that differs from the
source in a way an operator should know, a phrase saying how (the import lists
it per row); None when nothing was lost or changed.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from services.contract import limits

# The most UTF-8 bytes a note's or a message's content may hold: a Convex document holds at most 1 MiB
# (contract/limits.json max_text_bytes), so a larger row could be stored in PostgreSQL but never copied.
MAX_TEXT_BYTES = limits().max_text_bytes

# One token of a PostgreSQL array literal: a quoted element, a brace or comma, or an unquoted element
# (inner spaces kept, surrounding ones not), each with the spaces around it.
_ARRAY_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([{},])|((?:[^{},"\\\s]|\\.)(?:(?:[^{},"\\]|\\.)*'
                          r'(?:[^{},"\\\s]|\\.))?))\s*', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)


def parse_array_literal(text: str) -> list[str | None] | None:
    """A PostgreSQL array literal (`{vip,"jakarta barat",NULL}`; nested braces flattened, a leading
    `[1:2]=` ignored) as its elements, None for an unquoted NULL; None when `text` is not one."""
    body = text.strip()
    if body.startswith("["):
        body = body.partition("=")[2].strip()
    if not (body.startswith("{") and body.endswith("}")):
        return None
    elements: list[str | None] = []
    depth, position = 0, 0
    while position < len(body):
        token = _ARRAY_TOKEN.match(body, position)
        if token is None or token.end() == position:
            return None
        position = token.end()
        quoted, structure, bare = token.groups()
        if structure is not None:
            depth += {"{": 1, "}": -1}.get(structure, 0)
            if depth < 0:
                return None
        elif quoted is not None:
            elements.append(_ESCAPE.sub(r"\1", quoted))
        else:
            elements.append(None if bare.upper() == "NULL" else _ESCAPE.sub(r"\1", bare))
    return elements if depth == 0 else None


def _flatten(value: list[Any]) -> list[Any]:
    return [item for element in value for item in (_flatten(element) if isinstance(element, list) else [element])]


def read_tags(value: Any) -> tuple[list[str], str | None]:
    """Tags as a list of strings, never holding NULL (docs/contract.md §3; a Convex array of strings).

    An array (text[], json) is taken element by element; a text column holding a PostgreSQL array
    literal is parsed as one; any other text is split on commas. Each tag is trimmed; empty tags and
    repeats are dropped, and NULLs are dropped and reported.
    """
    if value is None:
        return [], None
    if isinstance(value, str):
        literal = parse_array_literal(value)
        value = literal if literal is not None else value.split(",")
    elements = _flatten(value) if isinstance(value, list) else [value]
    nulls = sum(element is None for element in elements)
    tags: list[str] = []
    for element in elements:
        tag = str(element).strip() if element is not None else ""
        if tag and tag not in tags:
            tags.append(tag)
    return tags, (f"{nulls} NULL tag(s) dropped" if nulls else None)


def read_score(value: Any) -> tuple[int, str | None]:
    """lead_score as Kontak's integer 0-100: a number, or text holding one, rounded and held to the
    range; anything else is 0, reported."""
    if value is None:
        return 0, None
    try:
        number = Decimal(str(value).strip())
        if not number.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        shown = str(value)[:20] + ("…" if len(str(value)) > 20 else "")
        return 0, f"lead_score {shown!r} is not a number: 0 stored"
    return max(0, min(100, int(number.to_integral_value()))), None


def read_count(value: Any) -> int:
    """unread_count: a number of any type, or text holding one; anything else counts as 0."""
    try:
        number = Decimal(str(value).strip()) if value is not None else Decimal(0)
        return max(0, int(number)) if number.is_finite() else 0
    except InvalidOperation:
        return 0


def text_too_large(value: str | None) -> int | None:
    """The size in UTF-8 bytes of a text over MAX_TEXT_BYTES, else None."""
    if value is None or len(value) * 4 <= MAX_TEXT_BYTES:  # at most 4 bytes a character: no encoding needed
        return None
    size = len(value.encode("utf-8", "surrogatepass"))
    return size if size > MAX_TEXT_BYTES else None
