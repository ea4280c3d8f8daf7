"""The timing record of the request being served (docs/contract.md §6), for the backend clients.

Backend clients add their own time through `backend_call()`, so `backend_ms`
is what the database or Convex cost and `total_ms` is the whole request inside
the app. The request hooks that start the record and write the timing line are
hooks/timing.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


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
# starts (None for any other request), cleared when it is finished. One ContextVar read instead of
# has_request_context() and a `g` lookup through its proxy, several times a request.
# Set and cleared by hooks/timing.py.
request_timing: ContextVar[RequestTiming | None] = ContextVar("kontak_timing", default=None)


def current() -> RequestTiming | None:
    """This request's timing record, or None outside an `/api/` request."""
    return request_timing.get()


@contextmanager
def backend_call(queries: int = 1) -> Iterator[None]:
    """Count the enclosed block as `queries` backend round trips."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timing = current()
        if timing is not None:
            timing.backend_seconds += time.perf_counter() - started
            timing.queries += queries


def add_backend_time(seconds: float, queries: int = 1) -> None:
    """`backend_call` without the context manager: `seconds` of backend time, `queries` round trips."""
    timing = current()
    if timing is not None:
        timing.backend_seconds += seconds
        timing.queries += queries


def add_queries(count: int) -> None:
    """Count round trips made inside a `backend_call(queries=0)` block."""
    timing = current()
    if timing is not None:
        timing.queries += count
