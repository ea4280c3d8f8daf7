"""One JSON reading for both webhooks (docs/webhook.md §1.1), written in contract/webhook_rules.json.

convex/convex/transport.ts reads a body by the same rules, so a delivery is never
stored by one backend and refused (400, never retried by Kapso) by the other.
"""

from __future__ import annotations

import json
from typing import Any

from services.contract import rules


class InvalidJson(ValueError):
    """The body is not JSON as both webhooks read it."""


def _refuse_constant(name: str) -> None:
    raise InvalidJson(name)  # NaN, Infinity, -Infinity: not JSON (RFC 8259)


def _integer(literal: str) -> int | float:
    """An integer as written; one too long to be exact in a double is read as one (infinite when
    it overflows), as JSON.parse reads every number: no rule of docs/webhook.md tells them apart."""
    return int(literal) if len(literal) <= 20 else float(literal)


def _too_deep(value: Any, limit: int) -> bool:
    """Do arrays and objects nest deeper than `limit`? (The top-level object is depth 1.)"""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [child for node in level
                 for child in (node.values() if isinstance(node, dict) else node if isinstance(node, list) else ())
                 if isinstance(child, (dict, list))]
    return False


def read_json_body(body: bytes) -> Any:
    """The parsed body; InvalidJson for anything either webhook would refuse.

    Duplicate keys: the last one wins (as JSON.parse does).
    """
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_int=_integer)
    except (ValueError, RecursionError):  # untrusted bytes: any failure to read them is "not JSON"
        raise InvalidJson() from None
    if isinstance(value, (dict, list)) and _too_deep(value, rules().json_max_depth):
        raise InvalidJson("nested too deep")
    return value
