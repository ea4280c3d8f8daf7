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

The pieces: bench/follow_stack.py (the follower process, the stack, status/outbox helpers),
bench/follow_lag.py (follow_lag_p99_ms), bench/follow_ingest.py (ingest_with_capture_ratio),
bench/follow_down.py (--down), bench/follow_report.py (the result files).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.data import bench_cluster
from bench.follow_down import measure_down
from bench.follow_ingest import ROUNDS, SIDES, SLICE_S, measure_ingest
from bench.follow_lag import MEASURE_S, POLL_S, PROBE_EVERY, RATE, WARMUP_S, measure_lag
from bench.follow_report import down_markdown, figures_markdown, setup_for, write
from bench.follow_stack import CONTACTS, follow_stack, log

# bench/run.py and bench/report.py read FIGURES, CONTACTS, RATE, measure and run_figures from here.

FIGURES = [
    ("follow_lag_p99_ms", "commit in PostgreSQL until visible on by-phone-convex, 200 changes/s, follower as its "
     "own process (p99)", "<=", 1000, " ms"),
    ("ingest_with_capture_ratio", "webhook deliveries/s with change capture on (triggers + follower draining; "
     "follower and Convex as if on other hosts) ÷ off",
     ">=", 0.85, ""),
]


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


def run_figures(contacts: int = CONTACTS) -> dict[str, Any]:
    started = time.perf_counter()
    with bench_cluster() as (tmp, _pg, admin_url):
        raw = measure(admin_url, tmp, contacts)
    setup = setup_for(time.perf_counter() - started)
    write("follow", raw, figures_markdown(raw, setup, FIGURES), setup)
    return raw


def run_down(down_s: float, contacts: int = CONTACTS) -> dict[str, Any]:
    started = time.perf_counter()
    with bench_cluster() as (tmp, _pg, admin_url):
        raw = measure_down(admin_url, tmp, down_s, contacts=contacts)
    setup = setup_for(time.perf_counter() - started)
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
