"""Kontak's Prometheus metrics (docs/contract.md §15): their definitions and the calls that record them.

Under gunicorn, prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by
gunicorn.conf.py before any worker imports this) keeps each worker's values in files that
`/metrics` adds up, so a scrape sees the whole worker set. No label ever holds a phone, BSUID,
key, request id or workspace id: only the names listed in docs/contract.md §15.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from flask import Flask
from prometheus_client import Counter, Gauge, Histogram

from services.contract import rules

# Lookups answer in milliseconds — PostgreSQL's in under one, so the first buckets are quarter
# milliseconds (the verdict page's percentiles can be no finer than these) —; a frozen backend's
# deadline is seconds.
SECONDS_BUCKETS = (0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_DURATION = Histogram("kontak_request_duration_seconds", "Time to answer a request, server side.",
                             ("route", "backend", "status_class"), buckets=SECONDS_BUCKETS)
BACKEND_CALL_DURATION = Histogram("kontak_backend_call_duration_seconds", "Time of one backend call.",
                                  ("backend",), buckets=SECONDS_BUCKETS)
WEBHOOK_EVENTS = Counter("kontak_webhook_events_total", "Webhook events by what became of them.",
                         ("outcome", "reason"))
BREAKER_OPEN = Gauge("kontak_breaker_open", "1 while a worker's circuit breaker of the backend is open.",
                     ("backend",), multiprocess_mode="livemax")
SHADOW_COMPARISONS = Counter("kontak_shadow_comparisons_total", "Shadow lookups by their result.",
                             ("primary", "shadow", "result"))
SHADOW_BACKEND = Histogram("kontak_shadow_backend_seconds",
                           "Each backend's time on the same shadowed questions.", ("backend",), buckets=SECONDS_BUCKETS)


# METRICS=off records nothing at all: the hot path reads this one module global (set by init_app) and
# does no other metric work, so the off side of bench/metrics_cost.py is Kontak without metrics.
enabled = False
# The backends by the names of docs/contract.md §15 (services/postgres/pool.py calls its backend "postgres").
_BACKEND_LABEL = {"postgres": "supabase"}
_IGNORE_REASONS = rules().ignore_reasons
# `.labels()` hashes and validates its arguments on each call: the request path looks children up here instead.
_request_children: dict[tuple[str, str, int], Histogram] = {}
_call_children: dict[str, Histogram] = {}


def init_app(app: Flask) -> None:
    """Record (METRICS=on) or not (off), for the whole process: a worker serves one app."""
    global enabled
    enabled = app.config["METRICS"] == "on"


def request_finished(route: str, backend: str, status: int, seconds: float) -> None:
    """One `/api/` request answered: `route` is the URL rule (never the path, which holds a phone).
    The caller checks `enabled` first: one attribute read is all METRICS=off costs a request."""
    key = (route, backend, status // 100)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = REQUEST_DURATION.labels(route, backend, f"{status // 100}xx")
    child.observe(seconds)


def backend_call_finished(backend: str, seconds: float) -> None:
    """One guarded call to a backend (services/backend.py), made for a timed request; the caller checks
    `enabled`."""
    child = _call_children.get(backend)
    if child is None:
        child = _call_children[backend] = BACKEND_CALL_DURATION.labels(_BACKEND_LABEL.get(backend, backend))
    child.observe(seconds)


def webhook_events(stored: int, duplicates: int, ignored_reasons: Iterable[str]) -> None:
    """One delivery's events by outcome; an ignored event by its reason (contract/webhook_rules.json only)."""
    if not enabled:
        return
    if stored:
        WEBHOOK_EVENTS.labels("stored", "-").inc(stored)
    if duplicates:
        WEBHOOK_EVENTS.labels("duplicate", "-").inc(duplicates)
    for reason, count in Tally(ignored_reasons).items():
        WEBHOOK_EVENTS.labels("ignored", reason if reason in _IGNORE_REASONS else "-").inc(count)


def breaker_state(backend: str, is_open: bool) -> None:
    """This worker's breaker of `backend` opened (1) or closed (0); /metrics shows the max over live workers."""
    if enabled:
        BREAKER_OPEN.labels(_BACKEND_LABEL.get(backend, backend)).set(1 if is_open else 0)


def shadow_compared(primary: str, shadow: str, result: str) -> None:
    """One shadow pair's end: match, mismatch, lag, dropped or error."""
    if not enabled:
        return
    SHADOW_COMPARISONS.labels(primary, shadow, result).inc()


def shadow_timed(primary: str, primary_seconds: float, shadow: str, shadow_seconds: float) -> None:
    """Both backends' times on one question both answered."""
    if not enabled:
        return
    SHADOW_BACKEND.labels(primary).observe(primary_seconds)
    SHADOW_BACKEND.labels(shadow).observe(shadow_seconds)
