"""Measuring helpers for the benchmarks: servers, keep-alive clients, wrk, the routes measured, statistics."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tools.servers import GunicornServer

API_KEY = "bench-key-" + uuid.uuid4().hex  # CRM_API_KEY of the servers bench.run starts
BY_PHONE = "/api/contacts/by-phone"
BY_PHONE_CONVEX = "/api/contacts/by-phone-convex"
FLOOR_BY_PHONE = "/floor/by-phone"  # bench/floor.py
FLOOR_CONVEX = "/floor/by-phone-convex"


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


def bsuid_path(route: str, workspace_id: str, bsuid: str) -> str:
    return f"{route}?{urlencode({'bsuid': bsuid, 'workspace_id': workspace_id})}"


def warm_up(base_url: str, paths: list[str], clients: int = 8) -> None:
    """Untimed requests over several connections, so every worker's pool and prepared statements are warm."""
    def one_connection(share: list[str]) -> None:
        client = KeepAliveClient(base_url, {"x-api-key": API_KEY})
        for path in share:
            client.get_ok(path)
        client.close()

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_connection, [paths[i::clients] for i in range(clients)]))


def p50_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def p99_ms(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[98] * 1000


def summarize_rounds(rounds: list[dict], per_round: int | None, key: str = "ratio",
                     extra: dict | None = None) -> dict[str, Any]:
    medians = {name: round(statistics.median(r[name] for r in rounds), 4) for name in rounds[0]}
    return {"value": statistics.median(r[key] for r in rounds), "median_of_rounds": medians,
            "requests_per_side_per_round": per_round, "rounds": [{k: round(v, 4) for k, v in r.items()}
                                                                   for r in rounds], **(extra or {})}


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


def parse_options(description: str, **options: Any) -> argparse.Namespace:
    """A benchmark script's command line: `--name` for each keyword (`max_seconds` is `--max-seconds`),
    given its default or (default, help); the option's type is its default's."""
    parser = argparse.ArgumentParser(description=description)
    for name, option in options.items():
        default, text = option if isinstance(option, tuple) else (option, None)
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=text)
    return parser.parse_args()
