"""`python -m tools.serve [APP] [gunicorn options…]`: Kontak's settings checked, then gunicorn.

The same as `gunicorn -c gunicorn.conf.py wsgi:app` (which checks the same
settings), except for what only a launcher can catch:
- gunicorn reads WEB_CONCURRENCY while it is being imported, before any
  configuration file, so a value that is not a number ends there in a traceback;
- an address that cannot be bound (taken, not on this host, a missing socket
  directory): gunicorn retries it for five seconds and then names the address,
  not the setting. The configuration file cannot try it, because on a reload
  (SIGHUP) the master already holds that address.
Here every bad setting ends in one line, and gunicorn replaces this process (same pid).
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
import stat
import sys
from pathlib import Path

from dotenv import load_dotenv
from gunicorn.util import is_ipv6, parse_address

from services.config import PROJECT_ROOT, ConfigError, load_server_settings, load_settings

_BIND_OPTIONS = ("-b", "--bind")


def _unix_socket_problem(path: str) -> str | None:
    target = Path(path)
    if target.exists() and not stat.S_ISSOCK(target.stat().st_mode):
        return "the path exists and is not a socket"  # gunicorn removes an old socket, nothing else
    if not (target.parent.is_dir() and os.access(target.parent, os.W_OK | os.X_OK)):
        return "its directory is missing or not writable"
    return None


def _bind_problem(address: str) -> str | None:
    """Why gunicorn could not listen on `address`, found by binding it once (as gunicorn will)."""
    where = parse_address(address)
    if isinstance(where, str):
        return _unix_socket_problem(where)
    if not isinstance(where, tuple):
        return None  # fd://: already bound by whoever passed it
    host, port = where
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is no obstacle
            sock.bind((host, port))
    except socket.gaierror as error:
        return f"host {host!r} does not resolve ({error.strerror})"
    except OSError as error:
        reason = "in use by another process" if error.errno == errno.EADDRINUSE else error.strerror
        return reason or str(error)
    return None


def check_bind(server: dict, port: int, options: list[str]) -> None:
    """Raise ConfigError naming GUNICORN_BIND (or PORT) when gunicorn could not listen there."""
    given = options + shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))
    if any(option.split("=", 1)[0] in _BIND_OPTIONS for option in given):
        return  # an address given to gunicorn directly is gunicorn's to check
    name, address = ("GUNICORN_BIND", server["GUNICORN_BIND"]) if server["GUNICORN_BIND"] else \
        ("PORT", f"127.0.0.1:{port}")
    problem = _bind_problem(address)
    if problem:
        raise ConfigError(f"{name} cannot be listened on: {address} ({problem})")


def main(argv: list[str]) -> int:
    load_dotenv()
    app = argv[0] if argv and not argv[0].startswith("-") else "wsgi:app"
    options = argv[1:] if argv and not argv[0].startswith("-") else argv
    os.chdir(PROJECT_ROOT)  # first: relative paths (the access log, a unix socket) are gunicorn's, from here
    try:
        settings = load_settings()
        check_bind(load_server_settings(), settings["PORT"], options)
    except ConfigError as error:
        print(f"kontak: configuration error: {error}", file=sys.stderr)
        return 1
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *options, app])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
