"""Latency statistics shared by `compare` and `log-summary`, so both report
the same percentiles for the same requests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def describe(samples_ms: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50/p90/p95/p99 (linear interpolation), max and mean, in ms."""
    if len(samples_ms) == 0:
        return {"count": 0, **{f"p{p}": None for p in PERCENTILES}, "max": None, "mean": None}
    values = np.asarray(samples_ms, dtype=float)
    stats: dict[str, float | int | None] = {"count": int(values.size)}
    for p, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        stats[f"p{p}"] = round(float(value), 3)
    stats["max"] = round(float(values.max()), 3)
    stats["mean"] = round(float(values.mean()), 3)
    return stats


def ratio_with_ci(numerator_ms: Sequence[float], denominator_ms: Sequence[float], percentile: float,
                  resamples: int = 2000, seed: int = 7) -> dict[str, float]:
    """percentile(numerator) / percentile(denominator), with a bootstrap 95% interval."""
    a, b = np.asarray(numerator_ms, dtype=float), np.asarray(denominator_ms, dtype=float)
    rng = np.random.default_rng(seed)
    a_boot = np.percentile(rng.choice(a, size=(resamples, a.size)), percentile, axis=1)
    b_boot = np.percentile(rng.choice(b, size=(resamples, b.size)), percentile, axis=1)
    low, high = np.percentile(a_boot / b_boot, [2.5, 97.5])
    return {"ratio": round(float(np.percentile(a, percentile) / np.percentile(b, percentile)), 3),
            "ci_low": round(float(low), 3), "ci_high": round(float(high), 3)}


def verdict(name_a: str, name_b: str, ratio: dict[str, float], label: str) -> str | None:
    """One line, only when the interval excludes 1."""
    if ratio["ci_low"] > 1:
        return (f"{name_a} is {ratio['ratio']:.2f}x slower than {name_b} at {label} "
                f"(95% CI {ratio['ci_low']:.2f}-{ratio['ci_high']:.2f})")
    if ratio["ci_high"] < 1:
        return (f"{name_a} is {1 / ratio['ratio']:.2f}x faster than {name_b} at {label} "
                f"(95% CI {1 / ratio['ci_high']:.2f}-{1 / ratio['ci_low']:.2f})")
    return None
