"""`ingest_with_capture_ratio` (bench/follow.py): signed one-event Kapso deliveries POSTed to the
webhook, deliveries/s with change capture on ÷ off, the sides alternated slice by slice."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import statistics
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from bench.deliveries import signed_delivery
from bench.follow_stack import SECRET, Stack, cpu_seconds, log, status, wait_caught_up
from commands.sync import capture

SENDERS = 2000  # senders of the deliveries, each known after the warm-up (contact + conversation exist)
CONCURRENCY = 4
ROUNDS, SLICE_S = 7, 5.0
SIDES = ("off", "on", "on_shared", "triggers_only")
# "on": the follower and the stand-in at nice 19, standing in for a follower and a Convex on other hosts
# (as in production); the PostgreSQL backends serving the follower's reads and deletes keep their priority,
# so PostgreSQL still pays all of capture. "on_shared": the same at normal priority, sharing the 2 cores.
ELSEWHERE_NICE = 19


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
    for r in range(rounds):
        order = SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]
        rates: dict[str, float] = {}
        for side in order:
            rates[side], one = _slice(stack, r, side, deliveries.make(per_slice), seconds)
            slices.append(one)
        results.append({"ratio": rates["on"] / rates["off"],
                        "shared_ratio": rates["on_shared"] / rates["off"],
                        "triggers_only_ratio": rates["triggers_only"] / rates["off"],
                        "on_per_s": rates["on"], "on_shared_per_s": rates["on_shared"], "off_per_s": rates["off"],
                        "triggers_only_per_s": rates["triggers_only"]})
        log(f"ingest round {r + 1}/{rounds}: on {rates['on']:.0f}/s, off {rates['off']:.0f}/s, triggers only "
            f"{rates['triggers_only']:.0f}/s, on sharing the cores {rates['on_shared']:.0f}/s: "
            f"ratio {results[-1]['ratio']:.3f}")
    return _ingest_result(results, slices, seconds, warm, deliveries)


def _slice(stack: Stack, r: int, side: str, work: list[tuple[bytes, dict[str, str]]],
           seconds: float) -> tuple[float, dict[str, Any]]:
    """One slice of `side` in round `r`, then capture back on and the outbox drained (untimed):
    (deliveries/s, the slice's record)."""
    pid, standin_pid = stack.follower.process.pid, stack.standin.process.pid
    if side == "off":
        _drop_triggers(stack.url)
    else:
        _triggers_on(stack.url)
    if side not in ("on", "on_shared"):
        stack.follower.pause()
    for process in (pid, standin_pid):
        os.setpriority(os.PRIO_PROCESS, process, ELSEWHERE_NICE if side == "on" else 0)
    cpu_before, standin_before = cpu_seconds(pid), cpu_seconds(standin_pid)
    done, elapsed = post_for(stack.server.url, work, seconds)
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
    return done / elapsed, {"round": r, "side": side, "deliveries": done, "seconds": round(elapsed, 3),
                            "per_s": round(done / elapsed, 1), "backlog_at_slice_end": backlog,
                            "drain_after_s": round(drain, 2), "follower_cpu_cores": round(follower_cpu, 3),
                            "standin_cpu_cores": round(standin_cpu, 3)}


def _ingest_result(results: list[dict[str, float]], slices: list[dict[str, Any]], seconds: float, warm: int,
                   deliveries: Deliveries) -> dict[str, Any]:
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
