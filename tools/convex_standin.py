"""Start and stop the local Convex stand-in (docs/contract.md §8).

It is a Node process serving the project's own Convex functions from
convex-test's in-memory backend on loopback; `make run` and the tests use it
when CONVEX_SITE_URL is unset. Its latency is not Convex's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import requests

from services.config import PROJECT_ROOT

CONVEX_PROJECT = PROJECT_ROOT / "convex"
DEFAULT_PORT = 3211


class ConvexStandin:
    def __init__(self, api_key: str | None, data_file: Path | None = None, port: int = DEFAULT_PORT,
                 log_file: Path | None = None, webhook_secret: str | None = None,
                 default_region: str | None = None) -> None:
        self.api_key = api_key or ""
        self.webhook_secret = webhook_secret
        # The phone rule's region (docs/contract.md §4) must be the one Flask uses, or the two
        # backends read national numbers differently; unset, the environment's (as Flask reads it).
        self.default_region = default_region
        self.data_file = data_file
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> str:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the Convex stand-in needs Node 20")
        args = [node, "standin/main.mjs"]
        if self.data_file is not None:
            args += ["--data", str(Path(self.data_file).resolve())]
        env = {**os.environ, "CRM_API_KEY": self.api_key, "CONVEX_STANDIN_PORT": str(self.port),
               "KONTAK_ALLOW_IMPORT": "true"}
        if self.webhook_secret:
            env["KAPSO_WEBHOOK_SECRET"] = self.webhook_secret
        region = self.default_region if self.default_region is not None else os.environ.get("DEFAULT_REGION", "")
        env["DEFAULT_REGION"] = region.strip().upper() or "ID"
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(args, cwd=CONVEX_PROJECT, env=env, stdout=output, stderr=output)
        self._wait_ready(timeout)
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Convex stand-in exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/_standin/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError("the Convex stand-in did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
