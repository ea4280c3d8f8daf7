"""The comparable timing line of SPEC section 6.

One line per `/api/…` request, logfmt with a stable key order, plus the same
figures in `Server-Timing` and an `X-Request-ID` echo. Backend clients add
their own time through `backend_call()`, so `backend_ms` is what the database
or Convex cost and `total_ms` is the whole request inside the app.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from flask import Flask, Response, request

from services.phones import mask_phone

logger = logging.getLogger("kontak.timing")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(slots=True)
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


# The record of the `/api/` request being served in this context (thread or greenlet): set when it
# starts (None for any other request), cleared when it is finished. One ContextVar read instead of
# has_request_context() and a `g` lookup through its proxy, several times a request.
_current: ContextVar[RequestTiming | None] = ContextVar("kontak_timing", default=None)


def current() -> RequestTiming | None:
    """This request's timing record, or None outside an `/api/` request."""
    return _current.get()


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


def _request_id() -> str:
    given = request.headers.get("X-Request-ID")
    # 32 random lower-case hex digits, as uuid4().hex looked, without building a UUID.
    return given if given and _SANE_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


def _start() -> None:
    _current.set(RequestTiming(started=time.perf_counter(), request_id=_request_id())
                 if request.path.startswith("/api/") else None)


_INFO = logging.INFO
_LINE = ("timing route=%s backend=%s method=%s status=%d found=%s total_ms=%.2f "
         "backend_ms=%.2f queries=%d phone=%s request_id=%s")
_FOUND = {None: "-", True: "true", False: "false"}


def _finish(response: Response) -> Response:
    timing = _current.get()
    if timing is None:
        return response
    _current.set(None)
    total_ms = (time.perf_counter() - timing.started) * 1000
    backend_ms = timing.backend_seconds * 1000
    if logger.isEnabledFor(_INFO):
        rule = request.url_rule
        line = _LINE % (rule.rule if rule is not None else "-", timing.backend, request.method,
                        response.status_code, _FOUND[timing.found], total_ms, backend_ms, timing.queries,
                        mask_phone(timing.phone), timing.request_id)
        _emit(line)
    headers = response.headers
    headers.add("Server-Timing", f"backend;dur={backend_ms:.2f}, app;dur={total_ms:.2f}")
    headers.add("X-Request-ID", timing.request_id)
    return response


def _emit(line: str) -> None:
    """`logger.info(line)`, the same bytes out. When the only listener is Kontak's own handler
    (stderr, `%(message)s`, no filters: the served case), the line goes straight to its stream
    under its lock, as StreamHandler.emit would write it: no LogRecord, caller lookup or
    formatting pass for a line that is already formatted. Anything else listening (a test's
    capture, another handler, a filter) gets the ordinary record."""
    handlers = logger.handlers
    if len(handlers) == 1 and not logger.filters and not logger.propagate:
        handler = handlers[0]
        if getattr(handler, "kontak_timing", False) and not handler.filters and handler.level <= _INFO \
                and handler.formatter is _FORMATTER:
            stream = handler.stream
            with handler.lock:
                try:
                    stream.write(line + handler.terminator)
                    stream.flush()
                except Exception:  # noqa: BLE001 - as logging does: a broken stream never fails a request
                    handler.handleError(logger.makeRecord(logger.name, _INFO, "", 0, line, None, None))
            return
    # The message already formatted; made directly, the record skips Logger.info's stack walk
    # for a caller this line never prints.
    logger.handle(logger.makeRecord(logger.name, _INFO, __file__, 0, line, None, None, "_finish"))


_FORMATTER = logging.Formatter("%(message)s")


def init_app(app: Flask) -> None:
    # Once per process: the lines go to stderr, bare, whatever else listens.
    if not any(getattr(h, "kontak_timing", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_FORMATTER)
        handler.kontak_timing = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    app.before_request(_start)
    app.after_request(_finish)
