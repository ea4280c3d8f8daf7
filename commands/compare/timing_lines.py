"""Reading docs/contract.md §6 timing lines back out of a gunicorn log."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commands.compare.latency import describe
from commands.verdict.lines import RESULTS, parse_shadow_line

_TIMING = re.compile(
    r"timing route=(?P<route>\S+) backend=(?P<backend>\S+) method=(?P<method>\S+) status=(?P<status>\d{3}) "
    r"found=(?P<found>\S+) total_ms=(?P<total>[\d.]+) backend_ms=(?P<backend_ms>[\d.]+) queries=(?P<queries>\d+)"
    r"(?: phone=\S+(?: bsuid=\S+)? request_id=(?P<request_id>\S+))?"
)
# A leading ISO-8601 time, or gunicorn's bracketed one: "[2026-01-20 09:10:11 +0000]".
_STAMP = re.compile(r"^\[?(?P<stamp>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?)\]?")


@dataclass(frozen=True, slots=True)
class TimingLine:
    """One timing line (docs/contract.md §6) read back; `at` is the log line's own time, if any."""
    route: str
    backend: str
    status: int
    total_ms: float
    backend_ms: float
    queries: int
    request_id: str
    at: datetime | None


def parse_time(text: str) -> datetime:
    """ISO-8601, with or without a zone (UTC when none)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" +", "+").replace(" -", "-"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _line_time(line: str) -> datetime | None:
    stamp = _STAMP.match(line)
    if not stamp:
        return None
    try:
        return parse_time(stamp["stamp"])
    except ValueError:
        return None


def _in_range(at: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if (since or until) and at is None:
        return False
    return not ((since and at < since) or (until and at > until))


def parse_line(line: str) -> TimingLine | None:
    match = _TIMING.search(line)
    if match is None:
        return None
    return TimingLine(match["route"], match["backend"], int(match["status"]), float(match["total"]),
                      float(match["backend_ms"]), int(match["queries"]), match["request_id"] or "",
                      _line_time(line))


def timing_rows(lines: Iterable[str], since: datetime | None = None, until: datetime | None = None,
                    request_id_prefix: str = "") -> list[dict[str, Any]]:
    """One row per (backend, route, status class): count, percentiles, mean queries."""
    groups: dict[tuple[str, str, str], list[TimingLine]] = defaultdict(list)
    for raw in lines:
        line = parse_line(raw)
        if line is None or not line.request_id.startswith(request_id_prefix):
            continue
        if not _in_range(line.at, since, until):
            continue
        groups[(line.backend, line.route, f"{line.status // 100}xx")].append(line)
    rows = []
    for (backend, route, status_class), members in sorted(groups.items()):
        rows.append({
            "backend": backend, "route": route, "status": status_class,
            "total_ms": describe([m.total_ms for m in members]),
            "backend_ms": describe([m.backend_ms for m in members]),
            "mean_queries": round(sum(m.queries for m in members) / len(members), 2),
        })
    return rows


def shadow_rows(lines: Iterable[str], since: datetime | None = None, until: datetime | None = None,
                request_id_prefix: str = "") -> dict[str, Any] | None:
    """The docs/contract.md §15 shadow lines: both backends timed on the same requests (pairs both
    answered), per backend count, p50 and p95, and the pairs by result; None when there are none."""
    kept = []
    for raw in lines:
        line = parse_shadow_line(raw) if "shadow route=" in raw else None
        if line is None or not line.request_id.startswith(request_id_prefix):
            continue
        if not _in_range(_line_time(raw), since, until):
            continue
        kept.append(line)
    if not kept:
        return None
    timed = [line for line in kept if line.timed]
    backends = []
    for backend in ("convex", "supabase"):
        stats = describe([line.ms_of(backend) for line in timed])
        backends.append({"backend": backend, "count": stats["count"], "p50": stats["p50"], "p95": stats["p95"]})
    results = {result: sum(1 for line in kept if line.result == result) for result in RESULTS}
    return {"backends": backends, "results": results}
