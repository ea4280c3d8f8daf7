"""The loggers of Kontak's comparable lines (docs/contract.md §6 timing, §15 shadow): each line goes
to stderr bare, once per process, whatever else listens (tests attach their own handlers beside it)."""

from __future__ import annotations

import logging
import sys

_FORMATTER = logging.Formatter("%(message)s")


def bare_stderr(logger: logging.Logger) -> None:
    """Give `logger` its one stderr handler (idempotent) and keep its lines out of the root logger."""
    if not any(getattr(h, "kontak_bare", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_FORMATTER)
        handler.kontak_bare = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
