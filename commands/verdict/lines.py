"""Reading docs/contract.md §15 shadow lines back out of a gunicorn log (verdict and log-summary)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

BACKENDS = ("supabase", "convex")
# The results a pair may end with; `dropped` never has a line of its own (§15 counts it in the
# metrics only) but is read if a writer logs it, so a count in the log is never lost.
RESULTS = ("match", "mismatch", "lag", "error", "dropped")
# Both backends answered 200 and the bodies were compared: these pairs carry two comparable times.
COMPARED = ("match", "mismatch", "lag")

_MS = r"\d{1,9}(?:\.\d{1,6})?|-"
# The whole rest of the line must be the record: a fragment quoted inside another line (a traceback,
# a request path) never counts. The leading part (a time stamp, a pid) is whatever the log adds.
_SHADOW = re.compile(
    r"(?:^|\s)shadow route=(?P<route>/\S{0,200}) primary=(?P<primary>supabase|convex) "
    r"shadow=(?P<shadow>supabase|convex) status=(?P<status>\d{3}) shadow_status=(?P<shadow_status>\d{3}|-) "
    rf"primary_ms=(?P<primary_ms>{_MS}) shadow_ms=(?P<shadow_ms>{_MS}) "
    rf"result=(?P<result>{'|'.join(RESULTS)})"
    r"(?: phone=\S+)?(?: bsuid=\S+)? request_id=(?P<request_id>[A-Za-z0-9._-]{1,64})\s*$"
)
_MISMATCH = re.compile(
    r"(?:^|\s)shadow-mismatch request_id=(?P<request_id>[A-Za-z0-9._-]{1,64}) primary=(?P<primary>supabase|convex) "
    r"shadow=(?P<shadow>supabase|convex) fields=(?P<fields>[A-Za-z0-9_.,-]{0,500})\s*$"
)


@dataclass(frozen=True, slots=True)
class ShadowLine:
    """One shadow pair: the primary's and the shadow's backend time (ms) for the same question."""
    route: str
    primary: str
    shadow: str
    status: int
    shadow_status: int | None
    primary_ms: float | None
    shadow_ms: float | None
    result: str
    request_id: str

    def ms_of(self, backend: str) -> float | None:
        return self.primary_ms if backend == self.primary else self.shadow_ms

    @property
    def timed(self) -> bool:
        """Both answered and both times are known: a pair for the paired statistics."""
        return self.result in COMPARED and self.primary_ms is not None and self.shadow_ms is not None


def _ms(text: str) -> float | None:
    return None if text == "-" else float(text)


def parse_shadow_line(line: str) -> ShadowLine | None:
    """The §15 `shadow …` line in `line`, or None for anything else (the same backend on both sides too)."""
    match = _SHADOW.search(line)
    if match is None or match["primary"] == match["shadow"]:
        return None
    shadow_status = match["shadow_status"]
    return ShadowLine(match["route"], match["primary"], match["shadow"], int(match["status"]),
                      None if shadow_status == "-" else int(shadow_status), _ms(match["primary_ms"]),
                      _ms(match["shadow_ms"]), match["result"], match["request_id"])


def parse_mismatch_fields(line: str) -> list[str] | None:
    """The differing keys a `shadow-mismatch …` line names, or None for any other line."""
    match = _MISMATCH.search(line)
    if match is None or match["primary"] == match["shadow"]:
        return None
    # `-`: the writer could not name the keys (a body that was not a JSON object).
    return [field for field in match["fields"].split(",") if field and field != "-"]


def read_shadow_lines(lines: Iterable[str]) -> tuple[list[ShadowLine], dict[str, int]]:
    """Every shadow line of a log, and how often each field was named by a shadow-mismatch line."""
    shadows: list[ShadowLine] = []
    fields: dict[str, int] = {}
    for raw in lines:
        if "shadow" not in raw:  # most of a log: skipped without a regex
            continue
        parsed = parse_shadow_line(raw)
        if parsed is not None:
            shadows.append(parsed)
            continue
        for field in parse_mismatch_fields(raw) or ():
            fields[field] = fields.get(field, 0) + 1
    return shadows, fields
