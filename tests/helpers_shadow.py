"""Helpers of the shadow lookups' tests (docs/contract.md §15): the shadow lines of a gunicorn log, the
comparisons counted by /metrics, and looping clients in a process of their own."""

from __future__ import annotations

import multiprocessing
import queue
import re
import statistics
import subprocess
import threading
import time
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import API_KEY, PG_ROUTE, ROOT, ask
from tools.servers import GunicornServer

SHADOW_LINE = re.compile(
    r"^shadow route=(?P<route>\S+) primary=(?P<primary>supabase|convex) shadow=(?P<shadow>supabase|convex) "
    r"status=(?P<status>\d+) shadow_status=(?P<shadow_status>\d+) primary_ms=(?P<primary_ms>\d+\.\d\d) "
    r"shadow_ms=(?P<shadow_ms>\d+\.\d\d) result=(?P<result>match|mismatch|lag|error) phone=(?P<phone>\S+) "
    r"bsuid=(?P<bsuid>\S+) request_id=(?P<rid>[A-Za-z0-9._-]+)$", re.M)
MISMATCH_LINE = re.compile(
    r"^shadow-mismatch request_id=(?P<rid>[A-Za-z0-9._-]+) primary=(?P<primary>\S+) shadow=(?P<shadow>\S+) "
    r"fields=(?P<fields>\S+)$", re.M)


def shadow_lines(log: str) -> list[dict[str, str]]:
    """Every shadow line of `log`, its fields by name (a line out of the contract's key order is not one)."""
    return [m.groupdict() for m in SHADOW_LINE.finditer(log)]


def mismatch_lines(log: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in MISMATCH_LINE.finditer(log)]


def metrics_committed() -> bool:
    """Whether /metrics (the metrics engineer's blueprints/metrics.py) is in the tree's history yet: from then on
    the comparisons are asserted on it, before on the log lines alone."""
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "blueprints/metrics.py"], cwd=ROOT,
                             capture_output=True)
    return tracked.returncode == 0


def comparisons(server: GunicornServer) -> dict[str, float] | None:
    """`kontak_shadow_comparisons_total` summed over the worker set, by result; None while /metrics is 404."""
    response = requests.get(server.url + "/metrics", headers={"x-api-key": API_KEY}, timeout=10)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text[:300]
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "kontak_shadow_comparisons_total":
                result = sample.labels["result"]
                totals[result] = totals.get(result, 0.0) + sample.value
    return totals


def p99(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[98]


class Looping:
    """`count` keep-alive clients asking `route` back to back in a process of their own (as threads of the
    test's process they would share its GIL with it); `.results()` once stopped: (status, seconds) each."""

    def __init__(self, url: str, count: int, route: str = PG_ROUTE) -> None:
        context = multiprocessing.get_context("fork")
        self._stop, self._out = context.Event(), context.Queue()
        self._process = context.Process(target=_loop, args=(url, count, route, self._stop, self._out), daemon=True)
        self._results: list[tuple[int | None, float]] = []

    def __enter__(self) -> Looping:
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        try:
            self._results = self._out.get(timeout=60)
        except queue.Empty:
            self._results = []
        self._process.join(10)

    def results(self) -> list[tuple[int | None, float]]:
        return self._results


def _loop(url: str, count: int, route: str, stop: Any, out: Any) -> None:
    results: list[tuple[int | None, float]] = []

    def run() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answer = ask(session, url, route)
                results.append((answer.status, answer.elapsed))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(30)
    out.put(list(results))


def looped_for(url: str, seconds: float, clients: int, route: str = PG_ROUTE) -> list[tuple[int | None, float]]:
    """`clients` looping clients on `route` for `seconds` (the test's own thread waits on a monotonic clock)."""
    with Looping(url, clients, route) as loop:
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            time.sleep(0.05)
    return loop.results()
