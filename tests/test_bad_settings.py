"""Settings that cannot work stop the start with one line naming them (docs/contract.md §9).

Each is tried the way an operator meets it: the service started by `python -m tools.serve` (and by
gunicorn with the project's configuration, where gunicorn itself reaches the setting), and a
`flask --app app` command. A value accepted today and unusable later (a port that is no number, a key
no client can send) would answer 500 on every request, or refuse every caller, instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
NOT_UTF8 = b"secret-\xff".decode("utf-8", "surrogateescape")  # what Python makes of such bytes in the environment


def start(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PORT": str(free_port()), **env})


SERVE = (sys.executable, "-m", "tools.serve")
GUNICORN = (sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app")


@pytest.mark.parametrize(("name", "value", "line"), [
    ("DATABASE_URL", "postgresql://postgres:pw@[::1:5432/postgres",
     'DATABASE_URL: not a valid PostgreSQL connection string: end of string reached when looking for matching "]" '
     'in IPv6 host address in URI: "postgresql://postgres:****@[::1:5432/postgres"'),
    ("DATABASE_URL", "postgresql://postgres@127.0.0.1:notaport/postgres",
     "DATABASE_URL: port 'notaport' is not a number from 1 to 65535"),
    ("DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres?port=99999",
     "DATABASE_URL: port '99999' is not a number from 1 to 65535"),
    ("CONVEX_SITE_URL", "http://[::1:3211", "CONVEX_SITE_URL is not a usable URL: Invalid IPv6 URL"),
    ("CONVEX_SITE_URL", "http://127.0.0.1:notaport",
     "CONVEX_SITE_URL is not a usable URL: Port could not be cast to integer value as 'notaport'"),
    ("CONVEX_SITE_URL", "https://", "CONVEX_SITE_URL must be an http or https URL with a host"),
    ("CRM_API_KEY", "a-key-with-a-space-after ",
     "CRM_API_KEY has leading or trailing whitespace, which no HTTP header keeps"),
    ("CRM_API_KEY", "ключ-☃",
     "CRM_API_KEY holds a character no HTTP client sends reliably (character 1 of 6): use printable ASCII"),
    ("KAPSO_WEBHOOK_SECRET", NOT_UTF8, "KAPSO_WEBHOOK_SECRET is not valid UTF-8"),
    ("GUNICORN_BIND", "127.0.0.1:99999", "GUNICORN_BIND: port '99999' is not a number from 1 to 65535, "
                                         "got '127.0.0.1:99999'"),
    ("GUNICORN_ACCESS_LOG", "/nonexistent-kontak-dir/access.log",
     "GUNICORN_ACCESS_LOG cannot be created: '/nonexistent-kontak-dir/access.log' (its directory is missing or "
     "not writable)"),
    ("GUNICORN_ACCESS_LOG", "/", "GUNICORN_ACCESS_LOG is a directory, not a file: '/'"),
])
def test_a_setting_that_cannot_work_stops_the_start_with_one_line(env, name, value, line):
    for command in (SERVE, GUNICORN):
        result = start({**env, name: value}, *command)
        assert result.returncode != 0, command
        assert result.stderr.strip().splitlines() == [f"kontak: configuration error: {line}"], command
        assert "pw@" not in result.stderr


def test_an_address_that_cannot_be_listened_on_stops_the_start_with_one_line(env, tmp_path):
    with socket.socket() as holder:  # another process's listener
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cases = [({"GUNICORN_BIND": f"127.0.0.1:{port}"}, f"GUNICORN_BIND cannot be listened on: 127.0.0.1:{port} "
                                                          "(in use by another process)"),
                 ({"PORT": str(port)}, f"PORT cannot be listened on: 127.0.0.1:{port} (in use by another process)"),
                 ({"GUNICORN_BIND": "192.0.2.1:8000"},  # TEST-NET-1: an address of no interface here
                  "GUNICORN_BIND cannot be listened on: 192.0.2.1:8000 (Cannot assign requested address)"),
                 ({"GUNICORN_BIND": f"unix:{tmp_path}/missing/kontak.sock"},
                  f"GUNICORN_BIND cannot be listened on: unix:{tmp_path}/missing/kontak.sock (its directory is "
                  "missing or not writable)")]
        for settings, line in cases:
            result = start({**env, **settings}, *SERVE)
            assert result.returncode == 1
            assert result.stderr.strip().splitlines() == [f"kontak: configuration error: {line}"], settings


@pytest.mark.parametrize("command", [("db", "check"), ("keys", "list"), ("sync-convex", "--samples", "0")])
def test_a_command_with_a_setting_that_cannot_work_is_one_line(env, command):
    result = start({**env, "CONVEX_SITE_URL": "http://[::1:3211"}, sys.executable, "-m", "flask", "--app", "app",
                   *command)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Error: CONVEX_SITE_URL is not a usable URL: Invalid IPv6 URL"]
