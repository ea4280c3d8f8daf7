"""Conversation summary (docs/contract.md §5), the same rules as convex/convex/summary.ts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from services.contract import rules

TOPICS_FILE = Path(__file__).resolve().parent.parent / "contract" / "topics.json"
TOKEN_RANGES_FILE = TOPICS_FILE.parent / "token_ranges.json"


@lru_cache(maxsize=1)
def _token() -> re.Pattern[str]:
    """A token: a maximal run of letters or digits, as contract/token_ranges.json pins them (Unicode 14,
    what convex/convex/summary.ts reads too), whatever Unicode this Python knows."""
    ranges = json.loads(TOKEN_RANGES_FILE.read_text(encoding="utf-8"))["letters_or_digits"]
    members = "".join(re.escape(chr(first)) + ("-" + re.escape(chr(last)) if last > first else "")
                      for first, last in ranges)
    return re.compile(f"[{members}]+")
# Only this many code points of each message are read (docs/webhook.md §6), on
# both backends: a lookup's cost does not grow with message size.
SUMMARY_PREFIX_CHARS = rules().summary_prefix_chars


@lru_cache(maxsize=1)
def load_topics(path: Path = TOPICS_FILE) -> tuple[tuple[str, frozenset[str]], ...]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple((topic["name"], frozenset(topic["keywords"])) for topic in data["topics"])


def summarize_conversation(contents_newest_first: Iterable[str | None] | None) -> str | None:
    """Summary of the newest messages, given newest first; None when there are none."""
    if contents_newest_first is None:
        return None
    contents = list(contents_newest_first)
    if not contents:
        return None
    topics = load_topics()
    found: list[str] = []
    for content in contents:
        if not content:
            continue
        tokens = set(_token().findall(content[:SUMMARY_PREFIX_CHARS].lower()))
        for name, keywords in topics:
            if name not in found and not keywords.isdisjoint(tokens):
                found.append(name)
    return "Discussed: " + ", ".join(found) if found else "General inquiry"
