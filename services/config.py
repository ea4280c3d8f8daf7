"""Configuration from the environment (docs/contract.md §9).

Every value is read and checked once, at start; a bad value raises
ConfigError naming the variable, so the service fails with one clear line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import phonenumbers

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_PG_DIR = PROJECT_ROOT / ".data" / "postgres"
EMBEDDED_PG_PORT = 54329
DEFAULT_CONVEX_SITE_URL = "http://127.0.0.1:3211"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ConfigError(click.ClickException, ValueError):
    """A configuration variable holds a value Kontak cannot use.

    A ClickException too: the `flask` CLI builds the app while it resolves the command, and
    click prints a ClickException as one line (`Error: …`, exit 1) where anything else would
    end every command in a traceback."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g}, got {raw!r}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    value = _number(env, name, default, minimum, maximum)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, got {env.get(name)!r}")
    return int(value)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _port_error(port: str) -> str | None:
    """Why `port` (a URL's or a bind's) cannot be used, or None; empty means the default."""
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {port!r} is not a number from 1 to 65535"
    return None


def _http_url(name: str, value: str) -> str:
    # requests would read the host and port only at the first call: a 500 on every request
    # instead of a refusal at start.
    if not is_utf8(value):
        raise ConfigError(f"{name} is not valid UTF-8")
    try:
        parsed = urlparse(value)
        port = parsed.port  # ValueError: a broken [IPv6] host, a port not a number or out of range
    except ValueError as error:
        raise ConfigError(f"{name} is not a usable URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{name} must be an http or https URL with a host")
    if port == 0:
        raise ConfigError(f"{name} is not a usable URL: port 0")
    return value


def is_utf8(value: str) -> bool:
    """False for a value holding bytes that were not UTF-8 (an argument or environment variable
    Python decoded with surrogate escapes): it cannot be sent to PostgreSQL or over HTTP."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def conninfo_problem(value: str) -> str | None:
    """What libpq could not use in a connection string (URL or key=value), or None; never its password.

    libpq's own parser (what every connection uses), so every string it takes is taken; it does not
    read the port, which would otherwise fail on every connection instead of at start."""
    if not is_utf8(value):
        return "not valid UTF-8"
    # Imported here, not at the top: gunicorn's master reads the settings before a worker
    # monkey-patches, and psycopg picks its (gevent or blocking) wait function when imported.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(value)
    except psycopg.ProgrammingError as error:
        # libpq quotes the string, or the part it could not read: the password is masked.
        reason = str(error).strip().splitlines()[0]
        for password in re.findall(r"://[^:/@]*:([^@/]+)@|password\s*=\s*(\S+)", value):
            secret = password[0] or password[1]
            reason = reason.replace(secret, "****")
        return f"not a valid PostgreSQL connection string: {reason}"
    return next(filter(None, (_port_error(p) for p in str(parts.get("port", "")).split(","))), None)


def conninfo_problem_in_child(value: str) -> str | None:
    """`conninfo_problem`, asked of a child interpreter: gunicorn's master must not import psycopg,
    which picks its (blocking) wait function when imported, before a gevent worker patches."""
    child = subprocess.run([sys.executable, "-c", _CONNINFO_CHILD], input=value.encode("utf-8", "surrogateescape"),
                           capture_output=True, timeout=60, cwd=PROJECT_ROOT)
    return child.stdout.decode("utf-8", "replace").strip() or None


_CONNINFO_CHILD = ("import sys; from services.config import conninfo_problem; "
                   "print(conninfo_problem(sys.stdin.buffer.read().decode('utf-8', 'surrogateescape')) or '')")


def _postgres_url(name: str, value: str, problem_of: Callable[[str], str | None] = conninfo_problem) -> str:
    if not value.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"{name} must be a postgres or postgresql URL")
    problem = problem_of(value)
    if problem:
        raise ConfigError(f"{name}: {problem}")
    return value


def _url(env: Mapping[str, str], name: str, check: Callable[[str, str], str]) -> str | None:
    value = env.get(name, "").strip()
    return check(name, value) if value else None


def _client_key(env: Mapping[str, str], name: str) -> str | None:
    """A key callers send in a header: a value no HTTP client can send would refuse every caller."""
    value = env.get(name) or None
    if value is None:
        return None
    if value != value.strip():
        raise ConfigError(f"{name} has leading or trailing whitespace, which no HTTP header keeps")
    bad = next((i for i, ch in enumerate(value) if not " " <= ch <= "~"), None)
    if bad is not None:
        # Never the key itself: only where the character is.
        raise ConfigError(f"{name} holds a character no HTTP client sends reliably (character {bad + 1} of "
                          f"{len(value)}): use printable ASCII")
    return value


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret Kontak hashes with (UTF-8 bytes): one that is not UTF-8 would fail every request."""
    value = env.get(name) or None
    if value is not None and not is_utf8(value):
        raise ConfigError(f"{name} is not valid UTF-8")
    return value


def _region(env: Mapping[str, str]) -> str:
    region = env.get("DEFAULT_REGION", "").strip().upper() or "ID"
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"DEFAULT_REGION must be a two-letter region phonenumbers knows, got {region!r}")
    return region


def _schema(env: Mapping[str, str]) -> str:
    schema = env.get("DATABASE_SCHEMA", "").strip() or "public"
    if not _IDENTIFIER.fullmatch(schema) or schema.startswith("pg_"):
        raise ConfigError(f"DATABASE_SCHEMA must be a plain lower-case identifier (a-z, 0-9, _), got {schema!r}")
    return schema


def embedded_database_url(port: int = EMBEDDED_PG_PORT) -> str:
    """Where the embedded PostgreSQL that `make run` starts listens."""
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def load_settings(env: Mapping[str, str] | None = None, *, gunicorn_master: bool = False) -> dict[str, Any]:
    """Read Kontak's settings from `env` (default: the process environment). In gunicorn's master
    (gunicorn.conf.py) the connection string is checked by a child process (`conninfo_problem_in_child`)."""
    env = os.environ if env is None else env
    problem_of = conninfo_problem_in_child if gunicorn_master else conninfo_problem
    database_url = _url(env, "DATABASE_URL", lambda name, value: _postgres_url(name, value, problem_of))
    convex_url = _url(env, "CONVEX_SITE_URL", _http_url)
    embedded_port = _integer(env, "EMBEDDED_PG_PORT", EMBEDDED_PG_PORT, 1024, 65535)
    settings = {
        "CRM_API_KEY": _client_key(env, "CRM_API_KEY"),
        "DATABASE_URL": database_url or embedded_database_url(embedded_port),
        "EMBEDDED_PG_PORT": embedded_port,
        "DATABASE_IS_EMBEDDED": database_url is None,
        "DATABASE_POOL_MODE": _choice(env, "DATABASE_POOL_MODE", "session", ("session", "transaction")),
        "DATABASE_POOL_MIN_SIZE": _integer(env, "DATABASE_POOL_MIN_SIZE", 1, 0, 100),
        "DATABASE_POOL_MAX_SIZE": _integer(env, "DATABASE_POOL_MAX_SIZE", 4, 1, 100),
        "DATABASE_POOL_TIMEOUT": _number(env, "DATABASE_POOL_TIMEOUT", 2.0, 0.05, 60),
        "DATABASE_CONNECT_TIMEOUT": _integer(env, "DATABASE_CONNECT_TIMEOUT", 2, 1, 60),
        "DATABASE_STATEMENT_TIMEOUT_MS": _integer(env, "DATABASE_STATEMENT_TIMEOUT_MS", 2000, 1, 600000),
        "DATABASE_SCHEMA": _schema(env),
        "CONVEX_SITE_URL": (convex_url or DEFAULT_CONVEX_SITE_URL).rstrip("/"),
        "CONVEX_IS_STANDIN": convex_url is None,
        "CONVEX_TIMEOUT": _number(env, "CONVEX_TIMEOUT", 2.0, 0.05, 60),
        "KAPSO_WEBHOOK_SECRET": _secret(env, "KAPSO_WEBHOOK_SECRET"),
        "DEFAULT_REGION": _region(env),
        "PORT": _integer(env, "PORT", 8000, 1, 65535),
        # Per worker process: calls to one backend at once (the bulkhead; over it, 503 at once)
        # and the circuit breaker (this many timeouts or connection failures in a row open it;
        # it lets one probe through after the pause).
        "DATABASE_MAX_CONCURRENCY": _integer(env, "DATABASE_MAX_CONCURRENCY", 32, 1, 10000),
        "CONVEX_MAX_CONCURRENCY": _integer(env, "CONVEX_MAX_CONCURRENCY", 32, 1, 10000),
        "BREAKER_FAILURES": _integer(env, "BREAKER_FAILURES", 5, 1, 10000),
        "BREAKER_PAUSE_SECONDS": _number(env, "BREAKER_PAUSE_SECONDS", 1.0, 0.1, 300),
        # docs/contract.md §15: the share of lookups also asked of the other backend, off the request
        # path; the pairs a worker may hold waiting; the delay before a differing pair is asked again.
        "SHADOW_SAMPLE": _number(env, "SHADOW_SAMPLE", 0.0, 0.0, 1.0),
        "SHADOW_QUEUE_SIZE": _integer(env, "SHADOW_QUEUE_SIZE", 100, 1, 100000),
        "SHADOW_RECHECK_MS": _integer(env, "SHADOW_RECHECK_MS", 2000, 0, 600000),
        # /metrics (docs/contract.md §15): on unless turned off.
        "METRICS": _choice(env, "METRICS", "on", ("on", "off")),
    }
    if settings["DATABASE_POOL_MIN_SIZE"] > settings["DATABASE_POOL_MAX_SIZE"]:
        raise ConfigError("DATABASE_POOL_MIN_SIZE must not exceed DATABASE_POOL_MAX_SIZE")
    return settings


def _writable_file(env: Mapping[str, str], name: str) -> str | None:
    """A path gunicorn will append to (`-`: stdout). Checked here, without creating it, because
    gunicorn's own refusal is a line that does not name the variable."""
    value = env.get(name, "").strip() or None
    if value is None or value == "-":
        return value
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"{name} is a directory, not a file: {value!r}")
    if path.exists():
        try:  # opening for append changes nothing, and is the one test root cannot pass by privilege
            with open(path, "a"):
                return value
        except OSError as error:
            raise ConfigError(f"{name} cannot be written: {value!r} ({error.strerror})") from None
    if not (path.parent.is_dir() and os.access(path.parent, os.W_OK | os.X_OK)):
        raise ConfigError(f"{name} cannot be created: {value!r} (its directory is missing or not writable)")
    return value


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_BIND = re.compile(r"(unix:\S+|[^\s:]*:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5})")


def load_server_settings(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """gunicorn's own settings (gunicorn.conf.py), checked like Kontak's: one clear line each.

    Each worker serves up to GUNICORN_WORKER_CONNECTIONS connections, one greenlet
    each, so a slow or idle client costs a little memory, not a thread.
    """
    env = os.environ if env is None else env
    bind = env.get("GUNICORN_BIND", "").strip()
    if bind and not _BIND.fullmatch(bind):
        raise ConfigError(f"GUNICORN_BIND must be host:port or unix:path, got {bind!r}")
    if bind and not bind.startswith("unix:") and _port_error(bind.rpartition(":")[2]):
        raise ConfigError(f"GUNICORN_BIND: {_port_error(bind.rpartition(':')[2])}, got {bind!r}")
    settings = {
        "GUNICORN_BIND": bind or None,
        "WEB_CONCURRENCY": _integer(env, "WEB_CONCURRENCY", 2, 1, 256),
        "GUNICORN_WORKER_CONNECTIONS": _integer(env, "GUNICORN_WORKER_CONNECTIONS", 1000, 10, 100000),
        "GUNICORN_TIMEOUT": _integer(env, "GUNICORN_TIMEOUT", 30, 2, 3600),
        "GUNICORN_GRACEFUL_TIMEOUT": _integer(env, "GUNICORN_GRACEFUL_TIMEOUT", 20, 1, 3600),
        # Also the most a client may take to send a request head: the gevent worker
        # closes a connection whose head is not complete by then.
        "GUNICORN_KEEPALIVE": _integer(env, "GUNICORN_KEEPALIVE", 5, 1, 300),
        "GUNICORN_CLIENT_TIMEOUT": _number(env, "GUNICORN_CLIENT_TIMEOUT", 30.0, 1, 3600),
        "GUNICORN_LOG_LEVEL": _choice(env, "GUNICORN_LOG_LEVEL", "info", _LOG_LEVELS),
        "GUNICORN_ACCESS_LOG": _writable_file(env, "GUNICORN_ACCESS_LOG"),
    }
    if settings["GUNICORN_CLIENT_TIMEOUT"] <= settings["GUNICORN_KEEPALIVE"]:
        raise ConfigError("GUNICORN_CLIENT_TIMEOUT must be longer than GUNICORN_KEEPALIVE")
    return settings
