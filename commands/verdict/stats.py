"""The verdict's statistics: the same requests timed on both backends, so every interval is a paired
bootstrap (whole pairs resampled), and the sentence of docs/contract.md §15."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from commands.compare.latency import describe
from commands.verdict.lines import COMPARED, RESULTS, ShadowLine
from services.verdict_page import sentence  # one wording for the command and the page

VERDICT_PERCENTILES = (50, 95, 99)
_CHUNK = 200  # resamples drawn at once: bounded memory for a million pairs


def paired_ratio_with_ci(numerator_ms: Sequence[float], denominator_ms: Sequence[float], percentile: float,
                         resamples: int = 2000, seed: int = 7) -> dict[str, float]:
    """percentile(numerator) / percentile(denominator) with a 95% interval from resampling *pairs*:
    request i's two times stay together, so what made one request slow on both sides is not noise."""
    a, b = np.asarray(numerator_ms, dtype=float), np.asarray(denominator_ms, dtype=float)
    if a.size != b.size or a.size == 0:
        raise ValueError("paired samples of equal, non-zero length are needed")
    rng = np.random.default_rng(seed)
    ratios = []
    for start in range(0, resamples, _CHUNK):
        index = rng.integers(0, a.size, size=(min(_CHUNK, resamples - start), a.size))
        low_side = np.percentile(b[index], percentile, axis=1)
        ratios.append(np.percentile(a[index], percentile, axis=1) / np.maximum(low_side, 1e-9))
    low, high = np.percentile(np.concatenate(ratios), [2.5, 97.5])
    point = float(np.percentile(a, percentile) / max(float(np.percentile(b, percentile)), 1e-9))
    return {"ratio": round(point, 3), "ci_low": round(float(low), 3), "ci_high": round(float(high), 3)}


def outcome_counts(lines: Sequence[ShadowLine]) -> dict[str, Any]:
    """Results by name; the mismatch rate over the compared pairs, `lag` apart (the follower, not a bug)."""
    counts = {result: 0 for result in RESULTS}
    for line in lines:
        counts[line.result] += 1
    compared = sum(counts[r] for r in COMPARED)

    def rate(count: int) -> float | None:
        return round(count / compared, 6) if compared else None

    return {"lines": len(lines), "compared": compared, **counts,
            "mismatch_rate": rate(counts["mismatch"]), "lag_rate": rate(counts["lag"])}


def verdict_report(lines: Sequence[ShadowLine], fields: dict[str, int]) -> dict[str, Any]:
    """Everything `flask --app app verdict` prints and writes, from the parsed lines."""
    timed = [line for line in lines if line.timed]
    times = {backend: [line.ms_of(backend) for line in timed] for backend in ("supabase", "convex")}
    ratios = {}
    if timed:
        ratios = {f"p{p}": paired_ratio_with_ci(times["convex"], times["supabase"], p) for p in VERDICT_PERCENTILES}
    by_primary = {backend: sum(1 for line in lines if line.primary == backend) for backend in ("supabase", "convex")}
    return {
        "pairs": len(timed),
        "by_primary": by_primary,
        "backends": {backend: describe(values) for backend, values in times.items()},
        "ratio_convex_over_supabase": ratios,
        "outcomes": outcome_counts(lines),
        "mismatch_fields": dict(sorted(fields.items(), key=lambda item: (-item[1], item[0]))),
        "verdict": sentence(len(timed), ratios.get("p50")),
        "times_ms": times,
    }
