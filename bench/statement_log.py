"""Round trips counted by PostgreSQL itself: while `statement_logging` is on, the server logs every
statement with its session's application name, and `logged_between` reads back the statements Kontak's
connections (application name `kontak`) sent while an action ran, between two marker statements."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

# "kontak|… LOG:  statement: SELECT …" or "… execute <name>: …" (a prepared statement), Kontak's sessions only.
_STATEMENT_LINE = re.compile(r"^kontak\|\S*\s*LOG:\s+(statement|execute [^:]*):\s*(.*)")


@contextmanager
def statement_logging(admin_url: str, **settings: str) -> Iterator[psycopg.Connection]:
    """log_statement=all (and `settings`) for the whole cluster while inside; yields the admin connection
    that `logged_between` writes its markers with."""
    settings = {"log_statement": "all", "log_line_prefix": "%a|", **settings}
    with psycopg.connect(admin_url, autocommit=True, application_name="kontak-bench") as conn:
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # every backend applies the reload before its next command
        try:
            yield conn
        finally:
            for name in settings:
                conn.execute(f"ALTER SYSTEM RESET {name}")
            conn.execute("SELECT pg_reload_conf()")


def logged_between(conn: psycopg.Connection, log_file: Path, action: Callable[[], object]) -> list[tuple[str, str]]:
    """(kind, first line of the statement) of every statement Kontak's sessions sent while `action` ran:
    kind is `statement` or `execute` (a prepared one)."""
    marker = f"kontak-bench-marker-{uuid.uuid4().hex}"
    conn.execute(f"SELECT '{marker}-start'")
    action()
    conn.execute(f"SELECT '{marker}-end'")
    deadline = time.monotonic() + 5
    while f"{marker}-end" not in (text := log_file.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{marker}-end never reached {log_file}")
        time.sleep(0.05)
    start = text.index(f"{marker}-start")
    end = text.index(f"{marker}-end", start)
    section = text[text.index("\n", start) + 1:text.rindex("\n", 0, end)]
    return [(match.group(1).split(" ")[0], match.group(2)) for line in section.splitlines()
            if (match := _STATEMENT_LINE.match(line))]
