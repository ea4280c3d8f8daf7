"""Real servers on loopback for tests and benchmarks: free ports, gunicorn, the follower."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from services.config import PROJECT_ROOT

# Kontak's own variables are never inherited: each server gets exactly what it is given.
_OWN_PREFIXES = ("CRM_", "DATABASE_", "CONVEX_", "KAPSO_", "GUNICORN_", "WEB_CONCURRENCY", "PORT", "BREAKER_",
                 "EMBEDDED_PG_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or workers still booting
            time.sleep(0.1)
    raise TimeoutError(url)


class GunicornServer:
    """gunicorn serving wsgi:app on a free port, its output kept in `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2, app: str = "wsgi:app") -> None:
        self.port = free_port()
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
        full_env.update(PORT=str(self.port), WEB_CONCURRENCY=str(workers))
        full_env.update(env)
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.serve", app],
            cwd=PROJECT_ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_for_http(self.url + "/", process=self.process)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 30, quick: bool = False) -> None:
        """SIGTERM: gunicorn's graceful stop, which waits for idle keep-alive clients up to their timeout;
        `quick`: SIGQUIT, at once (a test's teardown, whose clients are done)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT if quick else signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class FollowerProcess:
    """`python -m flask --app app sync-convex --follow` as an operator runs it: a process of its own,
    its output kept in `log_path`, paused, killed or stopped at will."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}, **env}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, *extra: str) -> FollowerProcess:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "sync-convex", "--follow", *extra],
                cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=out)
        return self

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (after SIGCONT, should it be paused): it finishes its step; its exit code."""
        if not self.alive():
            return None if self.process is None else self.process.returncode
        self.resume()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
