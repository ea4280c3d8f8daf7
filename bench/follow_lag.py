"""`follow_lag_p99_ms` (bench/follow.py): paced single-row UPDATEs, 1 in PROBE_EVERY a probe that one
poller asks by-phone-convex for until the answer holds it; lag = that answer's arrival − the commit."""

from __future__ import annotations

import queue
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.follow_stack import Stack, cpu_seconds, status, wait_caught_up
from bench.measure import API_KEY, BY_PHONE_CONVEX, KeepAliveClient, lookup_path
from commands.sync import capture

RATE = 200  # changes/s
WARMUP_S, MEASURE_S = 10.0, 30.0
PROBE_EVERY = 10  # 1 change in 10 is a probe: 20 probes/s
POLL_S = 0.02  # each pending probe asked at most this often: the poll resolution
PROBE_TIMEOUT_S = 30.0  # a probe not seen by then counts as lost


@dataclass
class Probe:
    workspace_id: str
    phone: str
    token: str
    counted: bool  # committed inside the measured window
    committed: float = 0.0
    next_poll: float = 0.0
    last_miss: float | None = None  # when the last poll that did not see it was sent
    seen: float | None = None
    polls: int = 0


class Poller(threading.Thread):
    """One thread, one keep-alive connection: each pending probe asked every POLL_S until seen."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.client = KeepAliveClient(base_url, {"x-api-key": API_KEY})
        self.incoming: queue.SimpleQueue[Probe] = queue.SimpleQueue()
        self.pending: list[Probe] = []
        self.done: list[Probe] = []
        self.writing_over = threading.Event()
        self.requests = 0
        self.errors: list[str] = []

    def run(self) -> None:
        deadline = None
        while True:
            over = self.writing_over.is_set()  # before draining, so the last probe put is drained
            while not self.incoming.empty():
                self.pending.append(self.incoming.get())
            if over:
                deadline = deadline or time.perf_counter() + PROBE_TIMEOUT_S
                if not self.pending or time.perf_counter() > deadline:
                    break
            now = time.perf_counter()
            for probe in [p for p in self.pending if p.next_poll <= now]:
                self._poll(probe)
            wake = min((p.next_poll for p in self.pending), default=time.perf_counter() + 0.01)
            time.sleep(max(0.0, min(wake - time.perf_counter(), 0.01)))
        self.client.close()

    def _poll(self, probe: Probe) -> None:
        sent = time.perf_counter()
        _elapsed, status_code, body = self.client.get(lookup_path(BY_PHONE_CONVEX, probe.workspace_id, probe.phone))
        arrived = time.perf_counter()
        self.requests += 1
        probe.polls += 1
        if status_code != 200:
            self.errors.append(f"{status_code}: {body[:200]!r}")
        elif probe.token.encode() in body:
            probe.seen = arrived
            self.pending.remove(probe)
            self.done.append(probe)
            return
        probe.last_miss, probe.next_poll = sent, sent + POLL_S


def _probe_contacts(url: str, n: int, rng: random.Random) -> tuple[list[tuple[str, str, str]], list[str]]:
    """`n` contacts with a phone for the probes (id, workspace, phone), and the ids of all the others."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = [(str(i), str(w), p) for i, w, p in conn.execute("SELECT id, workspace_id, phone FROM contacts")]
    with_phone = sorted(r for r in rows if r[2] is not None)
    probes = rng.sample(with_phone, n)
    taken = {p[0] for p in probes}
    return probes, [r[0] for r in rows if r[0] not in taken]


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


class BacklogSampler(threading.Thread):
    """The outbox every second until `stopping` is set: (seconds since `started`, backlog, outbox lag ms)."""

    def __init__(self, url: str, started: float) -> None:
        super().__init__(daemon=True)
        self.url, self.started = url, started
        self.samples: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.is_set():
                pending = capture.backlog(conn)
                self.samples.append((time.perf_counter() - self.started, pending.changes, pending.lag_ms))
                self.stopping.wait(1.0)


@dataclass
class Writes:
    """What measure_lag's writer did: its probes, how far behind schedule, CPU while measured, the outbox after."""

    probes: list[Probe]
    behind_max: float
    writing_s: float
    cpu_used: dict[str, float]
    at_end: dict[str, Any]


def measure_lag(stack: Stack, rate: int = RATE, warmup_s: float = WARMUP_S, measure_s: float = MEASURE_S,
                seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    total = int(rate * (warmup_s + measure_s))
    probe_rows, others = _probe_contacts(stack.url, total // PROBE_EVERY + 1, rng)
    poller = Poller(stack.server.url)
    conn = psycopg.connect(stack.url, autocommit=True)
    poller.start()
    started = time.perf_counter()
    sampler = BacklogSampler(stack.url, started)
    sampler.start()
    try:
        writes = _write_changes(stack, conn, poller, rng, probe_rows, others, rate=rate, total=total,
                                started=started, measure_from=started + warmup_s)
    finally:
        poller.writing_over.set()
        conn.close()
    poller.join(PROBE_TIMEOUT_S + 10)
    drained_s = wait_caught_up(stack.url, stack.follower, timeout=120)
    sampler.stopping.set()
    sampler.join(5)
    if poller.errors:
        raise RuntimeError(f"by-phone-convex answered errors: {poller.errors[:3]}")
    return _lag_result(stack, writes, poller, sampler.samples, drained_s, rate=rate, total=total,
                       warmup_s=warmup_s, measure_s=measure_s)


def _write_changes(stack: Stack, conn: psycopg.Connection, poller: Poller, rng: random.Random,
                   probe_rows: list[tuple[str, str, str]], others: list[str], *, rate: int, total: int,
                   started: float, measure_from: float) -> Writes:
    """`total` single-row UPDATEs paced at `rate`/s from `started`, every PROBE_EVERY-th a probe handed to
    `poller` (counted when due from `measure_from`, when the follower's and the stand-in's CPU starts counting)."""
    cpu = {"follower": stack.follower.process.pid, "standin": stack.standin.process.pid}
    update = "UPDATE contacts SET name = %s, updated_at = now() WHERE id = %s"
    behind_max, probes, cpu_at = 0.0, [], {}
    for i in range(total):
        due = started + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            behind_max = max(behind_max, now - due)
        if not cpu_at and now >= measure_from:
            cpu_at = {name: (cpu_seconds(pid), now) for name, pid in cpu.items()}
        if i % PROBE_EVERY == 0:
            contact_id, workspace_id, phone = probe_rows[i // PROBE_EVERY]
            probe = Probe(workspace_id, phone, f"follow-probe-{i}-{uuid.uuid4().hex[:8]}",
                          counted=due >= measure_from)
            conn.execute(update, (probe.token, contact_id))
            probe.committed = time.perf_counter()
            probe.next_poll = probe.committed + POLL_S
            poller.incoming.put(probe)
            probes.append(probe)
        else:
            conn.execute(update, (f"follow-{i}", rng.choice(others)))
    writing_s = time.perf_counter() - started
    ended = time.perf_counter()
    cpu_used = {name: round((cpu_seconds(pid) - cpu_at[name][0]) / (ended - cpu_at[name][1]), 3)
                for name, pid in cpu.items()}
    return Writes(probes, behind_max, writing_s, cpu_used, capture.status(conn))


def _lag_result(stack: Stack, writes: Writes, poller: Poller, samples: list[tuple[float, int, int]],
                drained_s: float, *, rate: int, total: int, warmup_s: float, measure_s: float) -> dict[str, Any]:
    counted = [p for p in writes.probes if p.counted]
    seen = [p for p in counted if p.seen is not None]
    lags = sorted((p.seen - p.committed) * 1000 for p in seen)
    resolution = [(p.seen - (p.last_miss or p.committed)) * 1000 for p in seen]
    measured = [s for s in samples if s[0] >= warmup_s]
    lost = len(counted) - len(seen)
    writing_s, at_end = writes.writing_s, writes.at_end
    return {
        "value": float("inf") if lost else _percentile(lags, 99),
        "p50_ms": round(statistics.median(lags), 1), "p99_ms": round(_percentile(lags, 99), 1),
        "max_ms": round(lags[-1], 1), "min_ms": round(lags[0], 1), "probes": len(counted), "probes_lost": lost,
        "changes_per_s_target": rate, "changes": total, "warmup_s": warmup_s, "measured_s": measure_s,
        "writing_s": round(writing_s, 2), "changes_per_s_achieved": round(total / writing_s, 1),
        "writer_behind_max_ms": round(writes.behind_max * 1000, 1), "probe_every": PROBE_EVERY,
        "poll_interval_ms": POLL_S * 1000, "poll_resolution_ms_median": round(statistics.median(resolution), 1),
        "poll_resolution_ms_max": round(max(resolution), 1), "polls_per_probe_median": statistics.median(
            p.polls for p in seen), "poller_requests_per_s": round(poller.requests / (writing_s + 1e-9), 1),
        "backlog_at_end_of_writes": at_end["backlog"], "outbox_lag_ms_at_end_of_writes": at_end["lag_ms"],
        "backlog_max_while_measured": max((s[1] for s in measured), default=None),
        "outbox_lag_ms_max_while_measured": max((s[2] for s in measured), default=None),
        "drained_after_writes_s": round(drained_s, 2), "backlog_final": status(stack.url)["backlog"],
        "cpu_cores_while_measured": writes.cpu_used,
    }
