"""The figures of `GET /verdict` (docs/contract.md §15), read from the live metrics of the worker set:
each backend's distribution of `kontak_shadow_backend_seconds`, percentiles estimated from its buckets,
the p50 ratio with a bootstrap interval, the comparisons by result and the follower's gauges.

Also the verdict's one sentence, which `flask --app app verdict` prints the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BACKENDS = ("supabase", "convex")
COMPARED = ("match", "mismatch", "lag")
RESULTS = ("match", "mismatch", "lag", "error", "dropped")
# Below this, a bootstrap interval is too coarse to carry a sentence (one pair gives a zero-width one).
MIN_PAIRS = 30
_HISTOGRAM = "kontak_shadow_backend_seconds"


def sentence(pairs: int, ratio: dict[str, float] | None) -> str:
    """The p50 verdict in one sentence when its 95% interval excludes 1, else why there is none."""
    if ratio is None or pairs < MIN_PAIRS:
        return f"No verdict: {pairs} paired lookups, at least {MIN_PAIRS} are needed"
    if ratio["ci_low"] > 1:
        return (f"On {pairs} shadowed lookups Convex is {ratio['ratio']:.2f}× slower than Supabase at p50 "
                f"(95% CI {ratio['ci_low']:.2f}–{ratio['ci_high']:.2f})")
    if ratio["ci_high"] < 1:
        return (f"On {pairs} shadowed lookups Convex is {1 / ratio['ratio']:.2f}× faster than Supabase at p50 "
                f"(95% CI {1 / ratio['ci_high']:.2f}–{1 / ratio['ci_low']:.2f})")
    return "No verdict: the interval includes 1"


@dataclass
class LiveFigures:
    """What the metrics hold: per backend the bucket upper bounds (s, +Inf last) and counts per bucket
    (not cumulative), the comparisons by result, and the follower's (lag s, backlog) or None."""
    bounds: list[float] = field(default_factory=list)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    follow: tuple[float, int] | None = None


def read_figures(collectors: Iterable[Any]) -> LiveFigures:
    """Samples read by name from `collectors` (a registry's `collect()`): multiprocess or not, the same."""
    figures = LiveFigures()
    cumulative: dict[str, dict[float, float]] = {}
    follow: dict[str, float] = {}
    for family in collectors:
        for sample in family.samples:
            if sample.name == f"{_HISTOGRAM}_bucket" and sample.labels.get("backend") in BACKENDS:
                by_bound = cumulative.setdefault(sample.labels["backend"], {})
                bound = float(sample.labels["le"])
                by_bound[bound] = by_bound.get(bound, 0.0) + sample.value
            elif sample.name == "kontak_shadow_comparisons_total" and sample.labels.get("result") in RESULTS:
                figures.results[sample.labels["result"]] += int(sample.value)
            elif sample.name in ("kontak_follow_lag_seconds", "kontak_follow_backlog"):
                follow[sample.name] = sample.value
    figures.bounds = sorted({bound for by_bound in cumulative.values() for bound in by_bound})
    for backend in BACKENDS:
        by_bound = cumulative.get(backend, {})
        running = [by_bound.get(bound, 0.0) for bound in figures.bounds]
        previous = [0.0, *running][: len(running)]
        figures.buckets[backend] = [int(round(now - before)) for now, before in zip(running, previous, strict=True)]
    if "kontak_follow_lag_seconds" in follow:
        figures.follow = (follow["kontak_follow_lag_seconds"], int(follow.get("kontak_follow_backlog", 0)))
    return figures


def bucket_quantiles(bounds: list[float], counts: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile of each row of per-bucket `counts`, interpolated linearly inside its bucket as
    Prometheus's histogram_quantile does (0 below the first bound; the +Inf bucket: its lower bound)."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    cumulative = np.cumsum(counts, axis=1)
    rank = q * cumulative[:, -1:]
    index = np.argmax(cumulative >= rank, axis=1)
    rows = np.arange(counts.shape[0])
    upper_bounds = np.asarray(bounds, dtype=float)
    lower_bounds = np.concatenate([[0.0], upper_bounds[:-1]])
    below = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0.0)
    inside = np.maximum(counts[rows, index], 1e-12)
    lower, upper = lower_bounds[index], upper_bounds[index]
    finite_upper = np.where(np.isinf(upper), lower, upper)
    return lower + (finite_upper - lower) * np.clip((rank[:, 0] - below) / inside, 0.0, 1.0)


def bucket_ratio_with_ci(bounds: list[float], numerator: list[int], denominator: list[int], q: float,
                         resamples: int = 2000, seed: int = 7) -> dict[str, float] | None:
    """quantile(numerator) / quantile(denominator) with a 95% interval, each side resampled from its own
    bucket distribution (multinomial). Buckets keep no pairing, so this is the unpaired bootstrap; its
    resolution is the bucket width."""
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if a.sum() == 0 or b.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    a_boot = rng.multinomial(int(a.sum()), a / a.sum(), size=resamples)
    b_boot = rng.multinomial(int(b.sum()), b / b.sum(), size=resamples)
    ratios = bucket_quantiles(bounds, a_boot, q) / np.maximum(bucket_quantiles(bounds, b_boot, q), 1e-12)
    low, high = np.percentile(ratios, [2.5, 97.5])
    point = bucket_quantiles(bounds, a, q)[0] / max(float(bucket_quantiles(bounds, b, q)[0]), 1e-12)
    return {"ratio": round(float(point), 3), "ci_low": round(float(low), 3), "ci_high": round(float(high), 3)}


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def page_model(figures: LiveFigures) -> dict[str, Any]:
    """Everything the page shows, in plain values (ms for times)."""
    backends = {}
    for backend in BACKENDS:
        counts = figures.buckets.get(backend) or [0] * len(figures.bounds)
        n = sum(counts)
        estimates = {f"p{p}": (float(bucket_quantiles(figures.bounds, counts, p / 100)[0]) * 1000 if n else None)
                     for p in (50, 95)}
        backends[backend] = {"n": n, "counts": counts, **estimates}
    pairs = min(backends[b]["n"] for b in BACKENDS)
    ratios = {f"p{p}": bucket_ratio_with_ci(figures.bounds, backends["convex"]["counts"],
                                            backends["supabase"]["counts"], p / 100) for p in (50, 95)}
    compared = sum(figures.results[r] for r in COMPARED)
    follow = None if figures.follow is None else {"lag_s": figures.follow[0], "backlog": figures.follow[1]}
    return {"bounds_ms": [b * 1000 if math.isfinite(b) else math.inf for b in figures.bounds],
            "backends": backends, "pairs": pairs, "ratios": ratios, "results": dict(figures.results),
            "compared": compared, "mismatch_rate": _rate(figures.results["mismatch"], compared),
            "lag_rate": _rate(figures.results["lag"], compared), "follow": follow,
            "verdict": sentence(pairs, ratios["p50"])}
