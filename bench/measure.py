"""Measuring helpers for bench.run: servers, keep-alive clients, wrk, statistics."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from tools.servers import GunicornServer


class Gunicorn(GunicornServer):
    """gunicorn (Kontak's gunicorn.conf.py) serving `app` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path, app: str = "wsgi:app", workers: int = 2) -> None:
        super().__init__(env, log_path, workers=workers, app=app)


class KeepAliveClient:
    """One persistent HTTP/1.1 connection; `get` returns (seconds, status, body)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = headers or {}

    def get(self, path: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        try:
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, ConnectionError):
            # The server closed an idle keep-alive connection: reconnect once.
            self.conn.close()
            started = time.perf_counter()
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
            body = response.read()
        elapsed = time.perf_counter() - started
        return elapsed, response.status, body

    def get_ok(self, path: str) -> tuple[float, dict]:
        elapsed, status, body = self.get(path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        return elapsed, json.loads(body)

    def close(self) -> None:
        self.conn.close()


def lookup_path(route: str, workspace_id: str, phone: str) -> str:
    return f"{route}?{urlencode({'phone': phone, 'workspace_id': workspace_id})}"


def p50_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def ensure_debian_tool(name: str) -> str:
    """The path of a load tool (wrk, hey); installed with apt-get when missing and we are root."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"the benchmark needs {name}: sudo apt-get install {name}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", name], check=True, env=env, timeout=300,
                   stdout=subprocess.DEVNULL)
    return shutil.which(name) or f"/usr/bin/{name}"


def ensure_wrk() -> str:
    return ensure_debian_tool("wrk")


_WRK_SCRIPT = """
paths = {%s}
n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1], {["x-api-key"] = "%s"})
end
"""
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: (.*)")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


def wrk_rps(wrk: str, base_url: str, paths: list[str], api_key: str, connections: int, seconds: float,
            threads: int = 1) -> float:
    """Requests per second over `seconds` at `connections` keep-alive connections,
    cycling through `paths`; any non-2xx answer or socket error fails the run."""
    lua = _WRK_SCRIPT % (", ".join(json.dumps(p) for p in paths), api_key)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        out = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                              "-s", script.name, base_url], capture_output=True, text=True, check=True,
                             timeout=seconds + 30).stdout
    if _NON_2XX.search(out) or _SOCKET_ERRORS.search(out):
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(_RPS.search(out).group(1))
