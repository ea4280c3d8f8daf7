"""Phone numbers: normalisation to E.164 (docs/contract.md §4) and masking for logs."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# Digits, spaces and + - ( ) . only; anything else is not a phone number.
_ALLOWED = re.compile(r"[0-9 +\-().]+")
_MAX_INPUT_LENGTH = 64


class InvalidPhone(ValueError):
    """The input cannot be read as a possible phone number."""


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def normalize_phone(raw: str, default_region: str = "ID") -> str:
    """Return `raw` as E.164, or raise InvalidPhone (see `_normalize`)."""
    # Checked before the cache, so it never holds a long string.
    e164 = _normalize(raw, default_region) if len(raw) <= _MAX_INPUT_LENGTH + 16 else None
    if e164 is None:
        raise InvalidPhone(raw)
    return e164


# A bot looks the same senders up again and again: parsing is the costly part
# of a lookup's own work, so results (valid or not) are remembered.
@lru_cache(maxsize=8192)
def _normalize(raw: str, default_region: str) -> str | None:
    """`raw` as E.164, or None.

    `+…` and `00…` are international, a leading 0 is national, and other
    digit-only input is read first as international without the `+` (the
    WhatsApp `wa_id` form), then as national.
    """
    text = raw.strip()
    if not text or len(text) > _MAX_INPUT_LENGTH or not _ALLOWED.fullmatch(text):
        return None
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if text.startswith("+"):
        number = _parse(text, None)
    elif digits.startswith("00"):
        number = _parse("+" + digits[2:], None)
    elif digits.startswith("0"):
        number = _parse(digits, default_region)
    else:
        number = _parse("+" + digits, None) or _parse(digits, default_region)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=8192)
def mask_phone(e164: str | None) -> str:
    """`+6281234567890` -> `+62812****890`: enough to correlate, too little to dial."""
    if not e164:
        return "-"
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "****"
    national = phonenumbers.national_significant_number(number)
    if len(national) <= 6:
        return f"+{number.country_code}****"
    return f"+{number.country_code}{national[:3]}****{national[-3:]}"


def mask_raw_phone(raw: str | None) -> str:
    """A phone as it was written, not (or not yet) E.164: its first and last 3 digits and its length,
    enough to find it again, too little to dial (`0812-3456-7890` -> `081****890 (14 chars)`)."""
    digits = "".join(ch for ch in raw or "" if ch.isdigit())
    if len(digits) <= 6:
        return f"'{'*' * len(digits)}' ({len(raw or '')} chars)"
    return f"{digits[:3]}****{digits[-3:]} ({len(raw or '')} chars)"
