"""What both backend clients share (services/postgres/pool.py, services/convex/client.py).

A backend client holds a connection pool and a guard (services/breaker.py),
both opened lazily in the process that uses them: gunicorn forks its workers
after the app is built, and a pool's sockets must never be shared across a
fork. Each call goes through `guarded()`: the guard's bulkhead and breaker
around it, and its time counted in the request's timing line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services import timing
from services.breaker import BackendGuard


class Backend:
    """One backend's per-process pool and guard; the subclass says how to open and close its pool."""

    name = "backend"

    def __init__(self, max_concurrency: int, failures: int, pause: float) -> None:
        self._guard_settings = (max_concurrency, failures, pause)
        self._pool: Any = None
        self._guard: BackendGuard | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _open_pool(self) -> Any:
        raise NotImplementedError

    def _close_pool(self, pool: Any) -> None:
        pool.close()

    @property
    def pool(self) -> Any:
        """The pool of this process, opened (with the guard) on first use after start or fork."""
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = self._open_pool()
                    self._guard = BackendGuard(self.name, *self._guard_settings)
                    self._pid = os.getpid()
        return self._pool

    @property
    def guard(self) -> BackendGuard:
        self.pool  # noqa: B018 - opens the pool and the guard in this process
        assert self._guard is not None
        return self._guard

    @contextmanager
    def guarded(self) -> Iterator[timing.BackendCall]:
        """One call: through the bulkhead and the breaker, its time and round trips counted."""
        with self.guard.call(), timing.backend_call(self.name) as call:
            yield call

    def close(self) -> None:
        """Close the pool if this process opened it; a forked child just forgets its parent's."""
        if self._pool is not None and self._pid == os.getpid():
            self._close_pool(self._pool)
        self._pool = None
