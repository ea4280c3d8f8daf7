"""The timing record of the request being served (docs/contract.md §6), for the backend clients.

Backend clients count each call through `backend_call()` (services/backend.py
`guarded`), so `backend_ms` is what the database or Convex cost, `queries` their
round trips, and `total_ms` the whole request inside the app. The request
hooks that start the record and write the timing line are hooks/timing.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from services import metrics


@dataclass(slots=True)
class RequestTiming:
    started: float
    request_id: str
    backend: str = "-"
    found: bool | None = None
    phone: str | None = None
    bsuid: str | None = None
    backend_seconds: float = 0.0
    queries: int = 0

    def total_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def backend_ms(self) -> float:
        return self.backend_seconds * 1000


# The record of the `/api/` request being served in this context (thread or greenlet): set when it
# starts (None for any other request), cleared when it is finished by hooks/timing.py.
request_timing: ContextVar[RequestTiming | None] = ContextVar("kontak_timing", default=None)


def current() -> RequestTiming | None:
    """This request's timing record, or None outside an `/api/` request."""
    return request_timing.get()


@dataclass(slots=True)
class BackendCall:
    """One call to a backend: how many round trips it made (one, unless it says otherwise)."""

    round_trips: int = 1


_backend_call: ContextVar[BackendCall | None] = ContextVar("kontak_backend_call", default=None)


@contextmanager
def backend_call(backend: str | None = None) -> Iterator[BackendCall]:
    """Count the enclosed block's time and round trips in this request's timing line (if any), and
    in `backend`'s call histogram (docs/contract.md §15) when named and METRICS is on."""
    call = BackendCall()
    token = _backend_call.set(call)
    started = time.perf_counter()
    try:
        yield call
    finally:
        _backend_call.reset(token)
        record = current()
        if record is not None:
            elapsed = time.perf_counter() - started
            record.backend_seconds += elapsed
            record.queries += call.round_trips
            # Calls made for a timed request only (a lookup, a webhook, a shadow lookup): /metrics's own
            # read of the outbox is not a call any caller waited for.
            if backend is not None and metrics.enabled:
                metrics.backend_call_finished(backend, elapsed)


def count_round_trips(count: int) -> None:
    """The round trips the backend call under way made, when not one (a transaction, a retry)."""
    call = _backend_call.get()
    if call is not None:
        call.round_trips = count
