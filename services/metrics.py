"""Kontak's Prometheus metrics (docs/contract.md §15): their definitions and the calls that record them.

Under gunicorn, prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by
gunicorn.conf.py before any worker imports this) keeps each worker's values in files that
`/metrics` adds up, so a scrape sees the whole worker set. No label ever holds a phone, BSUID,
key, request id or workspace id: only the names listed in docs/contract.md §15.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Lookups answer in milliseconds; a frozen backend's deadline is seconds.
_SECONDS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_DURATION = Histogram("kontak_request_duration_seconds", "Time to answer a request, server side.",
                             ("route", "backend", "status_class"), buckets=_SECONDS)
BACKEND_CALL_DURATION = Histogram("kontak_backend_call_duration_seconds", "Time of one backend call.",
                                  ("backend",), buckets=_SECONDS)
WEBHOOK_EVENTS = Counter("kontak_webhook_events_total", "Webhook events by what became of them.",
                         ("outcome", "reason"))
BREAKER_OPEN = Gauge("kontak_breaker_open", "1 while a worker's circuit breaker of the backend is open.",
                     ("backend",), multiprocess_mode="livemax")
SHADOW_COMPARISONS = Counter("kontak_shadow_comparisons_total", "Shadow lookups by their result.",
                             ("primary", "shadow", "result"))
SHADOW_BACKEND = Histogram("kontak_shadow_backend_seconds",
                           "Each backend's time on the same shadowed questions.", ("backend",), buckets=_SECONDS)


def shadow_compared(primary: str, shadow: str, result: str) -> None:
    """One shadow pair's end: match, mismatch, lag, dropped or error."""
    SHADOW_COMPARISONS.labels(primary, shadow, result).inc()


def shadow_timed(primary: str, primary_seconds: float, shadow: str, shadow_seconds: float) -> None:
    """Both backends' times on one question both answered."""
    SHADOW_BACKEND.labels(primary).observe(primary_seconds)
    SHADOW_BACKEND.labels(shadow).observe(shadow_seconds)
