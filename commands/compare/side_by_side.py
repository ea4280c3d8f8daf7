"""The side-by-side comparison of the two lookup routes (the compare command).

Parity first: every sampled request must get the same status and the same
JSON from both routes, or there is no verdict. Then both routes are timed
interleaved, one request to each in turn, so drift on this shared machine
hits both alike.
"""

from __future__ import annotations

import difflib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from commands.compare.probes import Probe

ROUTES = {"supabase": "/api/contacts/by-phone", "convex": "/api/contacts/by-phone-convex"}


def _server_timing(header: str | None) -> tuple[float | None, float | None]:
    """backend and app durations from `Server-Timing: backend;dur=…, app;dur=…`."""
    values: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        try:
            values[name] = float(rest)
        except ValueError:
            continue
    return values.get("backend"), values.get("app")


class Client:
    def __init__(self, base_url: str, api_key: str, timeout: float = 10) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def get(self, route: str, probe: Probe, request_id: str | None = None) -> requests.Response:
        headers = {"X-Request-ID": request_id} if request_id else None
        return self.session.get(self.base_url + ROUTES[route], timeout=self.timeout, headers=headers,
                                params=probe.params)


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def check_parity(client: Client, probes: list[Probe]) -> list[str]:
    """A readable diff for every probe the two routes answer differently."""
    differences = []
    for probe in probes:
        a, b = client.get("supabase", probe), client.get("convex", probe)
        left = json.dumps({"status": a.status_code, "body": _body(a)}, indent=2, ensure_ascii=False)
        right = json.dumps({"status": b.status_code, "body": _body(b)}, indent=2, ensure_ascii=False)
        if left != right:
            diff = difflib.unified_diff(left.splitlines(), right.splitlines(), "by-phone", "by-phone-convex",
                                        lineterm="")
            differences.append(f"{probe.label} workspace={probe.workspace_id}:\n" + "\n".join(diff))
    return differences


@dataclass
class Samples:
    latency_ms: list[float] = field(default_factory=list)
    server_backend_ms: list[float] = field(default_factory=list)
    server_app_ms: list[float] = field(default_factory=list)
    errors: int = 0


def measure(make_client: Callable[[], Client], probes: list[Probe], requests_per_route: int, concurrency: int,
            warmup: int, run_id: str) -> dict[str, Samples]:
    """Each step sends one request to each route, the order alternating step by step.

    Timed requests carry `X-Request-ID: <run_id>-t<step>`, so `log-summary
    --request-id <run_id>-t` reads exactly these requests back from the log.
    """
    results = {route: Samples() for route in ROUTES}
    lock = threading.Lock()
    counter = iter(range(warmup + requests_per_route))

    def worker() -> None:
        client = make_client()
        while True:
            with lock:
                step = next(counter, None)
            if step is None:
                return
            probe = probes[step % len(probes)]
            order = list(ROUTES) if step % 2 == 0 else list(reversed(ROUTES))
            for route in order:
                phase = "w" if step < warmup else "t"
                started = time.perf_counter()
                try:
                    response = client.get(route, probe, f"{run_id}-{phase}{step}")
                    ok = response.status_code == 200
                except requests.RequestException:
                    response, ok = None, False
                elapsed = (time.perf_counter() - started) * 1000
                if step < warmup:
                    continue
                backend, app = _server_timing(response.headers.get("Server-Timing") if response else None)
                with lock:
                    sample = results[route]
                    if not ok:
                        sample.errors += 1
                        continue
                    sample.latency_ms.append(elapsed)
                    if backend is not None and app is not None:
                        sample.server_backend_ms.append(backend)
                        sample.server_app_ms.append(app)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
