"""The comparable timing line of docs/contract.md §6, written by before/after-request hooks.

One line per `/api/…` request, logfmt with a stable key order, plus the same
figures in `Server-Timing` and an `X-Request-ID` echo. The record the backend
clients add their time to is services/timing.py's.
"""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Flask, Response, request

from services import metrics
from services.identity import mask_bsuid
from services.log_lines import bare_stderr
from services.phones import mask_phone
from services.timing import RequestTiming, request_timing

logger = logging.getLogger("kontak.timing")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A caller's id holding a phone number or a BSUID would put it in every log line: replaced.
_PERSONAL = re.compile(r"\d{7}|[A-Z]{2}\.[A-Za-z0-9]{4}")


def _request_id() -> str:
    given = request.headers.get("X-Request-ID")
    # Else 32 random lower-case hex digits.
    if given and _SANE_REQUEST_ID.fullmatch(given) and not _PERSONAL.search(given):
        return given
    return os.urandom(16).hex()


def _start() -> None:
    request_timing.set(RequestTiming(started=time.perf_counter(), request_id=_request_id())
                 if request.path.startswith("/api/") else None)


_LINE = ("timing route=%s backend=%s method=%s status=%d found=%s total_ms=%.2f "
         "backend_ms=%.2f queries=%d phone=%s bsuid=%s request_id=%s")
_FOUND = {None: "-", True: "true", False: "false"}


def _finish(response: Response) -> Response:
    timing = request_timing.get()
    if timing is None:
        return response
    request_timing.set(None)
    total_ms = (time.perf_counter() - timing.started) * 1000
    backend_ms = timing.backend_seconds * 1000
    rule = request.url_rule
    route = rule.rule if rule is not None else "-"
    logger.info(_LINE, route, timing.backend, request.method,
                response.status_code, _FOUND[timing.found], total_ms, backend_ms, timing.queries,
                mask_phone(timing.phone), mask_bsuid(timing.bsuid), timing.request_id)
    if metrics.enabled:  # docs/contract.md §15: the URL rule, never the path (it may hold a phone)
        metrics.request_finished(route, timing.backend, response.status_code, total_ms / 1000)
    headers = response.headers
    headers.add("Server-Timing", f"backend;dur={backend_ms:.2f}, app;dur={total_ms:.2f}")
    headers.add("X-Request-ID", timing.request_id)
    return response


def init_app(app: Flask) -> None:
    bare_stderr(logger)
    app.before_request(_start)
    app.after_request(_finish)
