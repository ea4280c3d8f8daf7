"""Identifiers both backends check alike: BSUIDs and usernames (docs/webhook.md §7.1, §7.9), UUIDs
and stored E.164 phones. The patterns come from contract/webhook_rules.json and contract/formats.json,
which the Convex functions read too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from services.contract import formats, rules
from services.message_content import has_surrogate


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    return re.compile(rules().bsuid_pattern), re.compile(rules().parent_bsuid_pattern)


def is_valid_bsuid(value: str) -> bool:
    """`ID.13491208655302741918`: two upper-case letters, a dot, 1-128 ASCII letters or digits."""
    # fullmatch, not the pattern's `$`, which would also accept a trailing newline.
    return _patterns()[0].fullmatch(value) is not None


def is_valid_parent_bsuid(value: str) -> bool:
    """`ID.ENT.11815799212886844830`: a BSUID shared by linked business portfolios."""
    return _patterns()[1].fullmatch(value) is not None


def is_valid_identifier(value: str | None, max_length: int | None = None) -> bool:
    """1..max_id_length code points, not blank, no NUL, no unpaired surrogate (docs/webhook.md §3):
    what both backends can store as sent."""
    limit = rules().max_id_length if max_length is None else max_length
    return (value is not None and 0 < len(value) <= limit and not value.isspace()
            and "\x00" not in value and not has_surrogate(value))


@lru_cache(maxsize=1)
def _uuid() -> re.Pattern[str]:
    return re.compile(formats().uuid)


def is_uuid(value: str) -> bool:
    """A canonical 8-4-4-4-12 UUID in any case (workspace ids, key ids)."""
    return _uuid().fullmatch(value) is not None


def mask_bsuid(bsuid: str | None) -> str:
    """`ID.13491208655302741918` -> `ID.134****918`: enough to correlate log lines, too little to use."""
    if not bsuid:
        return "-"
    country, _, rest = bsuid.partition(".")
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        return "****"
    return f"{country}.{rest[:3]}****{rest[-3:]}" if len(rest) > 6 else f"{country}.****"


def mask_username(username: str | None) -> str:
    """A username says who someone is; logs only say that there was one."""
    return "@****" if username else "-"
