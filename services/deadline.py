"""Client-side deadlines that hold when a backend is frozen or partitioned.

A server-side timeout (PostgreSQL's statement_timeout) cannot fire in a
server that is stopped, and the kernel keeps acknowledging its packets, so
TCP keepalives see nothing wrong either. Kontak therefore bounds each backend
call on its own side:

- `Alarm` runs a callback after a delay. Under the gevent worker it is a timer
  on the hub's loop (a few microseconds to arm and cancel, no greenlet); in a
  plain threaded process (`flask` commands, the in-process tests) a timer thread.
- `cut_socket` shuts a connection's socket down, so whatever waits on it —
  the statement, and any ROLLBACK a `with conn.transaction()` sends on the way
  out — fails at once instead of waiting for a server that will not answer.
- `interrupt_after` bounds a block that has no socket of ours yet (a connect)
  by raising `DeadlineExceeded` in it; only possible under gevent.
"""

from __future__ import annotations

import _socket
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class DeadlineExceeded(Exception):
    """A block bounded by `interrupt_after` ran out of time."""


_patched = False


def gevent_active() -> bool:
    """True in a process gevent has monkey-patched (gunicorn's gevent worker)."""
    global _patched
    if _patched:  # patching is never undone: once seen, no more looking
        return True
    monkey = sys.modules.get("gevent.monkey")
    _patched = monkey is not None and monkey.is_module_patched("socket")
    return _patched


def _gevent_hub() -> Any:
    """This thread's gevent hub (gevent imported once, on first use)."""
    global _get_hub
    if _get_hub is None:
        from gevent import get_hub

        _get_hub = get_hub
    return _get_hub()


_get_hub: Callable[[], Any] | None = None


class Budget:
    """The time left of one backend operation, shared by its steps (connect, wait, statement, retry)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())


class Alarm:
    """Call `callback(*args)` after `seconds` unless cancelled first."""

    def __init__(self, seconds: float, callback: Callable[..., Any], *args: Any) -> None:
        self.fired = False
        self._callback, self._args = callback, args
        self._cancelled = False
        if gevent_active():
            self._timer = _gevent_hub().loop.timer(max(seconds, 0.0))
            self._timer.start(self._fire)
            self._thread = None
        else:
            self._timer = None
            self._lock = threading.Lock()
            self._thread = threading.Timer(max(seconds, 0.0), self._fire)
            self._thread.daemon = True
            self._thread.start()

    def _fire(self) -> None:
        if self._thread is not None:
            with self._lock:
                if self._cancelled:
                    return
                self.fired = True
        else:
            self.fired = True
        self._callback(*self._args)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
        else:
            with self._lock:
                self._cancelled = True
            self._thread.cancel()


def cut_socket(fileno: int) -> None:
    """Shut down the TCP connection on `fileno` both ways (never blocks)."""
    if fileno < 0:
        return
    try:
        # The unpatched C socket type: this may run inside gevent's hub, where nothing may block.
        sock = _socket.socket(fileno=os.dup(fileno))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


@contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """Raise DeadlineExceeded in the block after `seconds` (gevent only; elsewhere no bound)."""
    if not gevent_active():
        yield
        return
    import gevent

    timeout = gevent.Timeout(max(seconds, 0.001), DeadlineExceeded())
    timeout.start()
    try:
        yield
    finally:
        timeout.close()
