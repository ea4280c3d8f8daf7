"""Per-backend bulkhead and circuit breaker (docs/contract.md §11: one sick backend never starves the other).

Each worker process keeps one `BackendGuard` per backend:

- the **bulkhead** bounds the calls to that backend in flight at once; a call
  over the bound is answered 503 at once instead of queueing behind a backend
  that may be stuck;
- the **circuit breaker** counts timeouts and connection failures in a row
  (`BackendTimeout`, `BackendDown`: refused, unreachable, dropped, no pooled
  connection in time); after `failures` of them it opens: calls fail at once
  with 503 and `Retry-After`. After `pause` seconds it lets one call through
  (half-open); that probe's success closes it, its failure opens it for
  another pause. Answers that prove the backend alive (a 502, a schema
  behind) do not count either way.

The locks are `threading`'s, which the gevent worker has patched into
gevent's own before any guard exists (guards are created with the app).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from services import metrics
from services.errors import BackendDown, BackendTimeout, BackendUnavailable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    def __init__(self, failures: int, pause: float, backend: str = "") -> None:
        self.threshold, self.pause = failures, pause
        self.backend = backend  # names the breaker in kontak_breaker_open (docs/contract.md §15)
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._state = CLOSED
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and time.monotonic() - self._opened_at >= self.pause:
                return HALF_OPEN  # the next call is let through as the probe
            return self._state

    def before_call(self) -> bool:
        """Raise BackendUnavailable (with Retry-After) while open; return True when this call is the probe."""
        if self._state is CLOSED:  # the steady state, read without the lock (a stale read lets one call by)
            return False
        with self._lock:
            if self._state == CLOSED:
                return False
            waited = time.monotonic() - self._opened_at
            if self._state == OPEN and waited >= self.pause:
                self._state = HALF_OPEN
            if self._state == HALF_OPEN and not self._probing:
                self._probing = True
                return True
            retry_after = max(1, math.ceil(self.pause - waited)) if self._state == OPEN else 1
        raise BackendUnavailable(retry_after=retry_after)

    def succeeded(self, probe: bool) -> None:
        if not probe and self._state is CLOSED and not self._failures:
            return  # nothing to reset: the steady state takes no lock
        with self._lock:
            self._failures = 0
            if probe or self._state == HALF_OPEN:
                self._state, self._probing = CLOSED, False
                metrics.breaker_state(self.backend, False)

    def failed(self, probe: bool) -> None:
        with self._lock:
            self._failures += 1
            if probe or self._state == HALF_OPEN or (self._state == CLOSED and self._failures >= self.threshold):
                self._state, self._opened_at, self._probing = OPEN, time.monotonic(), False
                # Half-open counts as open: the gauge says 0 again only once a probe has closed it.
                metrics.breaker_state(self.backend, True)

    def released(self, probe: bool) -> None:
        """The probe ended without a verdict on the backend (e.g. a 502 or a bad request): probe again."""
        if probe:
            with self._lock:
                self._probing = False


class Bulkhead:
    """`limit` tokens in a deque: pop and append are atomic in CPython, for threads and greenlets
    alike, so a call takes no lock (a semaphore costs a Condition and a lock each way)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tokens: deque[None] = deque([None] * limit)

    def acquire(self) -> None:
        try:
            self._tokens.pop()
        except IndexError:
            raise BackendUnavailable() from None

    def release(self) -> None:
        self._tokens.append(None)


class BackendGuard:
    """The bulkhead and the breaker of one backend, around each call to it."""

    def __init__(self, name: str, max_concurrency: int, failures: int, pause: float) -> None:
        self.name = name
        self.bulkhead = Bulkhead(max_concurrency)
        self.breaker = CircuitBreaker(failures, pause, name)
        metrics.breaker_state(name, False)  # the series exists (0) from the worker's first call on

    @contextmanager
    def call(self) -> Iterator[None]:
        """One call: the breaker, then a bulkhead slot; afterwards its verdict to the breaker
        (success, a failure that counts, or neither) and the slot back."""
        probe = self.breaker.before_call()
        try:
            self.bulkhead.acquire()
        except BackendUnavailable:
            self.breaker.released(probe)
            raise
        try:
            yield
        except (BackendTimeout, BackendDown):
            self.breaker.failed(probe)
            raise
        except BaseException:
            self.breaker.released(probe)
            raise
        else:
            self.breaker.succeeded(probe)
        finally:
            self.bulkhead.release()
