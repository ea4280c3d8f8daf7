"""The comparable timing line of SPEC section 6.

One line per `/api/…` request, logfmt with a stable key order, plus the same
figures in `Server-Timing` and an `X-Request-ID` echo. Backend clients add
their own time through `backend_call()`, so `backend_ms` is what the database
or Convex cost and `total_ms` is the whole request inside the app.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask, Response, g, has_request_context, request

from services.phones import mask_phone

logger = logging.getLogger("kontak.timing")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class RequestTiming:
    started: float
    request_id: str
    backend: str = "-"
    found: bool | None = None
    phone: str | None = None
    backend_seconds: float = 0.0
    queries: int = 0

    def total_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def backend_ms(self) -> float:
        return self.backend_seconds * 1000


def current() -> RequestTiming | None:
    """This request's timing record, or None outside an `/api/` request."""
    return g.get("timing") if has_request_context() else None


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


def add_queries(count: int) -> None:
    """Count round trips made inside a `backend_call(queries=0)` block."""
    timing = current()
    if timing is not None:
        timing.queries += count


def _request_id() -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _start() -> None:
    if request.path.startswith("/api/"):
        g.timing = RequestTiming(started=time.perf_counter(), request_id=_request_id())


def _finish(response: Response) -> Response:
    timing = current()
    if timing is None:
        return response
    total_ms, backend_ms = timing.total_ms(), timing.backend_ms()
    found = "-" if timing.found is None else str(timing.found).lower()
    route = request.url_rule.rule if request.url_rule is not None else "-"
    logger.info(
        "timing route=%s backend=%s method=%s status=%d found=%s total_ms=%.2f "
        "backend_ms=%.2f queries=%d phone=%s request_id=%s",
        route, timing.backend, request.method, response.status_code, found,
        total_ms, backend_ms, timing.queries, mask_phone(timing.phone), timing.request_id,
    )
    response.headers["Server-Timing"] = f"backend;dur={backend_ms:.2f}, app;dur={total_ms:.2f}"
    response.headers["X-Request-ID"] = timing.request_id
    return response


def init_app(app: Flask) -> None:
    # Once per process: the lines go to stderr, bare, whatever else listens.
    if not any(getattr(h, "kontak_timing", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.kontak_timing = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    app.before_request(_start)
    app.after_request(_finish)
