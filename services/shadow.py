"""Shadow lookups (docs/contract.md §15): a sample of the answered lookups asked of the other backend too.

Once a lookup route has sent its 200 (werkzeug's `call_on_close`), `SHADOW_SAMPLE` of them are put,
as a `Pair`, in a bounded queue of the worker (`SHADOW_QUEUE_SIZE`; full: dropped and counted). One
consumer per worker process — a greenlet under gunicorn's gevent worker, whose monkey-patching turns
`threading.Thread` into one; a thread elsewhere — asks the other backend through its own client (its
bulkhead, breaker and deadline apply), shapes the answer to bytes as its route does, and compares the
bytes. A difference is asked of both backends again after `SHADOW_RECHECK_MS` by a second consumer
fed by a second bounded queue, so the first never waits out the delay: equal then, `lag`; else
`mismatch`. Each pair ends in one log line and one `kontak_shadow_comparisons_total` count.

Before the primary's answer is sent only the sampling draw and the making of the pair (references to
what the request already holds) run; nothing here can delay it further or fail it: the consumers share
the worker's process with the requests, never a request's greenlet, and a shadow failure ends as `error`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, request

from services.errors import ApiError
from services.identity import mask_bsuid
from services.log_lines import bare_stderr
from services.lookup import LookupQuery, find_context
from services.metrics import shadow_compared, shadow_timed
from services.phones import mask_phone
from services.timing import RequestTiming, request_timing

logger = logging.getLogger("kontak.shadow")
errors = logging.getLogger("kontak")
OTHER = {"supabase": "convex", "convex": "supabase"}
_LINE = ("shadow route=%s primary=%s shadow=%s status=%d shadow_status=%d primary_ms=%.2f shadow_ms=%.2f "
         "result=%s phone=%s bsuid=%s request_id=%s")
_MISMATCH = "shadow-mismatch request_id=%s primary=%s shadow=%s fields=%s"


@dataclass(frozen=True, slots=True)
class Pair:
    """One sampled lookup: the question, and what the primary answered (its body's exact bytes)."""

    route: str
    primary: str
    query: LookupQuery
    api_key: str | None  # the caller's: the Convex route sends it on, Convex checks a workspace key too
    status: int
    body: bytes
    primary_seconds: float  # its timing record's backend time (docs/contract.md §6 backend_ms)
    request_id: str


@dataclass(frozen=True, slots=True)
class Asked:
    status: int
    body: bytes | None  # None unless 200
    seconds: float


def ask(app: Flask, backend: str, query: LookupQuery, api_key: str | None) -> Asked:
    """`query` asked of `backend` as its route asks it, shaped to the bytes its route answers; the time
    counted as §6's backend_ms is (a timing record of its own, which the backend clients add to)."""
    record = RequestTiming(started=time.perf_counter(), request_id="-")
    token = request_timing.set(record)
    try:
        with app.app_context():
            body = app.json.response(find_context(backend, query, api_key)).get_data()  # = the route's jsonify
        return Asked(200, body, record.backend_seconds)
    except ApiError as exc:
        return Asked(exc.status, None, record.backend_seconds)
    except Exception as exc:  # a bug: the shadow's own; logged without its message, which could hold a value
        errors.error("shadow lookup on %s failed: %s", backend, type(exc).__name__)
        return Asked(500, None, record.backend_seconds)
    finally:
        request_timing.reset(token)


def _canonical(value: Any) -> str:
    # Types and key order count, as they do in the bytes: 80 and 80.0 differ.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _differing(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys of `a` and `b` whose values, or places, differ (one level into `contact`)."""
    order_a, order_b = list(a), list(b)
    names: list[str] = []
    for key in order_a + [k for k in order_b if k not in a]:
        if key not in a or key not in b:
            names.append(prefix + key)
            continue
        moved = order_a.index(key) != order_b.index(key)
        if key == "contact" and not prefix and isinstance(a[key], dict) and isinstance(b[key], dict):
            names += _differing(a[key], b[key], "contact.") or (["contact"] if moved else [])
        elif moved or _canonical(a[key]) != _canonical(b[key]):
            names.append(prefix + key)
    return names


def differing_fields(primary: bytes, shadow: bytes) -> str:
    """`notes,contact.lead_status`: the answer's keys that differ, never a value; `-` if none can be named."""
    try:
        a, b = json.loads(primary), json.loads(shadow)
    except ValueError:
        return "-"
    if not isinstance(a, dict) or not isinstance(b, dict):
        return "-"
    return ",".join(_differing(a, b)) or "-"


def log_pair(pair: Pair, shadow: Asked, result: str, fields: str | None = None) -> None:
    """The pair's line (and a mismatch's), masked as §6's."""
    other = OTHER[pair.primary]
    logger.info(_LINE, pair.route, pair.primary, other, pair.status, shadow.status, pair.primary_seconds * 1000,
                shadow.seconds * 1000, result, mask_phone(pair.query.phone), mask_bsuid(pair.query.bsuid),
                pair.request_id)
    if result == "mismatch":
        logger.info(_MISMATCH, pair.request_id, pair.primary, other, fields or "-")


class Shadow:
    """One app's shadow lookups: the sampling, and per worker process the two queues and their consumers,
    made on first use after start or fork (like services/backend.py's pools: nothing crosses a fork)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.sample: float = app.config["SHADOW_SAMPLE"]
        self.queue_size: int = app.config["SHADOW_QUEUE_SIZE"]
        self.recheck_s: float = app.config["SHADOW_RECHECK_MS"] / 1000
        self._pid = 0
        self._lock = threading.Lock()
        self._pairs: queue.Queue[Pair] | None = None
        self._rechecks: queue.Queue[tuple[float, Pair, Asked]] | None = None

    def sampled(self) -> bool:
        return self.sample > 0 and (self.sample >= 1 or random.random() < self.sample)

    def _started(self) -> tuple[queue.Queue[Pair], queue.Queue[tuple[float, Pair, Asked]]]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pairs, self._rechecks = queue.Queue(self.queue_size), queue.Queue(self.queue_size)
                    for target, source in ((self._consume, self._pairs), (self._recheck_due, self._rechecks)):
                        threading.Thread(target=target, args=(source,), name="kontak-shadow", daemon=True).start()
                    self._pid = os.getpid()
        assert self._pairs is not None and self._rechecks is not None
        return self._pairs, self._rechecks

    def offer(self, pair: Pair) -> None:
        """Queue `pair` for its comparison, or count it dropped when the queue is full (never waits)."""
        try:
            self._started()[0].put_nowait(pair)
        except queue.Full:
            shadow_compared(pair.primary, OTHER[pair.primary], "dropped")

    def _consume(self, pairs: queue.Queue[Pair]) -> None:
        while True:
            pair = pairs.get()
            try:
                self.compare(pair)
            except Exception as exc:  # the consumer outlives any one pair
                errors.error("shadow comparison failed: %s", type(exc).__name__)

    def compare(self, pair: Pair) -> None:
        """Ask the other backend; equal bytes: `match`; not 200: `error`; else the re-check is scheduled."""
        other = OTHER[pair.primary]
        answer = ask(self.app, other, pair.query, pair.api_key)
        if answer.status != 200:
            self._end(pair, answer, "error")
            return
        shadow_timed(pair.primary, pair.primary_seconds, other, answer.seconds)
        if answer.body == pair.body:
            self._end(pair, answer, "match")
            return
        try:
            self._started()[1].put_nowait((time.monotonic() + self.recheck_s, pair, answer))
        except queue.Full:
            # Undecided (lag or mismatch?) and not logged: counted like a pair the first queue drops.
            shadow_compared(pair.primary, other, "dropped")

    def _recheck_due(self, rechecks: queue.Queue[tuple[float, Pair, Asked]]) -> None:
        # All delays are equal, so the queue is in order of due time: wait for the head, then the next.
        while True:
            due, pair, first = rechecks.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                self.recheck(pair, first)
            except Exception as exc:
                errors.error("shadow re-check failed: %s", type(exc).__name__)

    def recheck(self, pair: Pair, first: Asked) -> None:
        """Both backends asked again: the same bytes now is the follower's `lag`, else a `mismatch`
        (named from the new answers, or from the first ones when either backend fails now)."""
        again = ask(self.app, pair.primary, pair.query, pair.api_key)
        shadow_again = ask(self.app, OTHER[pair.primary], pair.query, pair.api_key)
        if again.body is not None and again.body == shadow_again.body:
            self._end(pair, first, "lag")
        elif again.body is not None and shadow_again.body is not None:
            self._end(pair, first, "mismatch", differing_fields(again.body, shadow_again.body))
        else:
            self._end(pair, first, "mismatch", differing_fields(pair.body, first.body or b""))

    def _end(self, pair: Pair, shadow: Asked, result: str, fields: str | None = None) -> None:
        shadow_compared(pair.primary, OTHER[pair.primary], result)
        log_pair(pair, shadow, result, fields)


def after_lookup(response: Response, query: LookupQuery, record: RequestTiming) -> None:
    """On a lookup route's 200: when sampled, the pair is offered once the answer has been sent."""
    shadow = for_app(current_app._get_current_object())  # the app itself: the consumers run outside any context
    if response.status_code != 200 or not shadow.sampled():
        return
    rule = request.url_rule
    pair = Pair(route=rule.rule if rule is not None else request.path, primary=record.backend, query=query,
                api_key=request.headers.get("x-api-key"), status=response.status_code, body=response.get_data(),
                primary_seconds=record.backend_seconds, request_id=record.request_id)
    response.call_on_close(lambda: shadow.offer(pair))


def for_app(app: Flask) -> Shadow:
    """The app's Shadow, made with its first lookup (its logger configured once per process)."""
    shadow = app.extensions.get("kontak.shadow")
    if shadow is None:
        bare_stderr(logger)
        shadow = app.extensions.setdefault("kontak.shadow", Shadow(app))
    return shadow
