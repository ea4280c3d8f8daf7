"""What /metrics and /verdict read (docs/contract.md §15): every gunicorn worker's recorded values
(services/metrics.py, prometheus_client's multiprocess mode) or this process's, plus the follower's
backlog and lag read from the outbox at scrape time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from flask import current_app, has_app_context
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from services.errors import ApiError
from services.postgres.outbox import backlog, capture_state
from services.postgres.pool import Database


class _Registered(Collector):
    """The process's default registry as one collector (no PROMETHEUS_MULTIPROC_DIR: Flask's test client,
    the `flask` CLI, a single process)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _FollowCollector(Collector):
    """The follower's backlog and lag, read from the outbox at scrape time (docs/contract.md §14, §15)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> Iterable[Metric]:
        return []  # read only when scraped: registering it must not ask PostgreSQL

    def collect(self) -> Iterator[Metric]:
        pending = follow_backlog(self.db)
        if pending is None:
            return
        changes, lag_ms = pending
        yield GaugeMetricFamily("kontak_follow_lag_seconds", "Age of the oldest change Convex has not had yet.",
                                value=lag_ms / 1000)
        yield GaugeMetricFamily("kontak_follow_backlog", "Changes in the outbox not yet applied to Convex.",
                                value=changes)


def follow_backlog(db: Database) -> tuple[int, int] | None:
    """(changes, lag in ms) while capture is on; None when it is off or PostgreSQL cannot say.

    Through the app's pool, its guard and read deadline: a down or frozen PostgreSQL costs a scrape at
    most that deadline, and the two gauges are then left out rather than the scrape failing."""
    def read(conn) -> tuple[int, int] | None:
        if capture_state(conn) != "on":
            return None
        pending = backlog(conn)
        return pending.changes, pending.lag_ms

    try:
        return db.read(read)
    except ApiError:
        return None


def registry(db: Database | None = None) -> CollectorRegistry:
    """What /metrics exposes: every worker's values (multiprocess mode) or this process's, plus the
    follower's gauges read from `db` (default: the app's pool, inside an app context)."""
    collected = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(collected)
    else:
        collected.register(_Registered())
    if db is None and has_app_context():
        db = current_app.extensions.get("kontak.db")
    if db is not None:
        collected.register(_FollowCollector(db))
    return collected
