"""What both backend clients share: a pool opened lazily in the process that uses it."""

from __future__ import annotations

import os
from typing import Any


class PerProcessPool:
    """Holds `_pool`, opened by the subclass in the process that uses it: gunicorn forks
    workers after the app is built, and a pool's sockets must never be shared across a fork."""

    _pool: Any = None
    _pid: int = 0

    def close(self) -> None:
        """Close the pool if this process opened it; a forked child just forgets its parent's."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
