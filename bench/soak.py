"""Soak: Kapso-like senders deliver 5,000 messages while PostgreSQL crashes once.

Sender threads post signed deliveries to a real gunicorn on a durable embedded
PostgreSQL: single events and batches whose senders overlap, in random order,
with replays and poison events (docs/webhook.md section 3) mixed in (bench/soak_deliveries.py). Each
non-200 answer is retried on Kapso's schedule (10 s, 40 s, 90 s) compressed by
`--compress`. PostgreSQL is stopped with `immediate` (a crash: no checkpoint)
part-way through and started again after `--down` seconds.

Afterwards: every valid message is stored exactly once and no poison event at
all; the same deliveries replayed into the Convex webhook of a local stand-in
leave both lookup routes answering equal JSON for every sender, with the
expected name, first contact date, summary and last interaction. The result
goes to bench/results/soak-<date>-<host>.{json,md}; any failure exits 1.
Loopback only; bounded by `--max-seconds`. The stand-in's speed is not Convex's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.data import durable_postgres
from bench.measure import parse_options
from bench.soak_deliveries import BASE_TIME, PHONE_NUMBER_ID, SECRET, Delivery, Message, plan
from services.conversation_summary import summarize_conversation
from services.convex.admin import ConvexAdmin
from tools.convex_standin import ConvexStandin
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import GunicornServer, free_port

RESULTS = Path(__file__).resolve().parent / "results"
API_KEY = "soak-api-key"
WORKSPACE = {"id": "00000000-0000-4000-8000-00000000500a", "name": "Soak", "kapso_phone_id": PHONE_NUMBER_ID,
             "created_at": "2026-01-01T00:00:00.000Z"}
KAPSO_RETRIES = (10, 40, 90)  # seconds after a non-200, per Kapso's documentation
KAPSO_ANSWER_TIMEOUT = 10  # Kapso wants an answer within 10 s


class Sender:
    """Posts deliveries the way Kapso does: a non-200 (or no answer in 10 s) is retried on the schedule."""

    def __init__(self, url: str, compress: float, deadline: float) -> None:
        self.url, self.deadline = url, deadline
        self.schedule = [s / compress for s in KAPSO_RETRIES]
        self.session = requests.Session()

    def deliver(self, d: Delivery) -> None:
        for attempt in range(len(self.schedule) + 1):
            if attempt:
                time.sleep(self.schedule[attempt - 1])
            started = time.perf_counter()
            d.started.append(time.monotonic())
            try:
                response = self.session.post(self.url, data=d.raw, headers=d.headers, timeout=KAPSO_ANSWER_TIMEOUT)
                status = str(response.status_code)
            except requests.Timeout:
                status = "timeout"
            except requests.ConnectionError:
                status = "connection error"
            d.attempts.append((status, time.perf_counter() - started))
            if status == "200":
                d.answer = response.json()
                return
            if time.monotonic() > self.deadline:
                return


def run_senders(url: str, deliveries: list[Delivery], threads: int, compress: float, seconds: float,
                deadline: float) -> None:
    """`threads` senders share the list; delivery i is not started before i * seconds / len(list)."""
    start = time.monotonic()
    step = seconds / max(1, len(deliveries))
    lock = threading.Lock()
    cursor = iter(range(len(deliveries)))

    def work() -> None:
        sender = Sender(url, compress, deadline)
        while time.monotonic() < deadline:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            delay = start + i * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sender.deliver(deliveries[i])

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def crash_postgres(postgres: EmbeddedPostgres, at: float, down: float, events: dict) -> threading.Thread:
    def crash() -> None:
        time.sleep(at)
        events["killed_at"] = time.monotonic()
        postgres.stop("immediate")
        time.sleep(down)
        postgres.start()
        events["restarted_at"] = time.monotonic()

    thread = threading.Thread(target=crash)
    thread.start()
    return thread


def replay_into_convex(url: str, deliveries: list[Delivery], threads: int) -> float:
    """Each delivery once more, into the stand-in's webhook (no outage there: one try, then one retry)."""
    lock = threading.Lock()
    cursor = iter(deliveries)
    started = time.perf_counter()

    def work() -> None:
        session = requests.Session()
        while True:
            with lock:
                d = next(cursor, None)
            if d is None:
                return
            for _ in range(2):
                try:
                    response = session.post(url, data=d.raw, headers=d.headers, timeout=60)
                    d.convex = (str(response.status_code), response.json() if response.status_code == 200 else None)
                except requests.RequestException as exc:
                    d.convex = (type(exc).__name__, None)
                if d.convex[0] == "200":
                    break

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - started


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def expected_lookups(messages: list[Message], senders: int) -> dict[int, dict]:
    by_sender: dict[int, list[Message]] = {s: [] for s in range(senders)}
    for m in messages:
        by_sender[m.sender].append(m)
    out = {}
    for s, own in by_sender.items():
        newest = sorted(own, key=lambda m: m.time, reverse=True)[:10]
        out[s] = {"found": True,
                  "contact": {"name": f"Kontak {s}", "lead_status": "new", "lead_score": 0, "tags": [],
                              "is_returning": True, "first_contact_date": iso(BASE_TIME + s)},
                  "notes": [], "conversation_summary": summarize_conversation([m.content for m in newest]),
                  "last_interaction": iso(max(m.time for m in own))}
    return out


def check_answers(deliveries: list[Delivery], failures: list[str], backend: str) -> None:
    for d in deliveries:
        if backend == "postgres":
            status, answer = (d.attempts[-1][0] if d.attempts else "not sent"), d.answer
        else:
            status, answer = d.convex or ("not sent", None)
        if status != "200" or answer is None:
            failures.append(f"{backend}: delivery {d.key} ({d.label}) never answered 200 (last: {status})")
            continue
        counts = (answer.get("stored", 0) + answer.get("duplicates", 0), answer.get("ignored"))
        if counts != (d.valid, d.poison):
            failures.append(f"{backend}: delivery {d.key} ({d.label}) answered {answer}, "
                            f"expected stored+duplicates={d.valid} ignored={d.poison}")


def parse_args() -> argparse.Namespace:
    return parse_options(
        __doc__.splitlines()[0], messages=5000, senders=(300, "distinct WhatsApp contacts"),
        threads=(8, "concurrent Kapso senders"), seconds=(40.0, "pace of the main phase"),
        compress=(10.0, "Kapso's 10/40/90 s retry schedule divided by this"),
        crash_at=(0.4, "fraction of --seconds"), down=(2.0, "seconds PostgreSQL stays down"), max_seconds=900.0,
        seed=11)


@dataclass
class Soak:
    """One soak: its deliveries, what each phase measured, and every failure found."""

    args: argparse.Namespace
    greetings: list[Delivery]
    main: list[Delivery]
    messages: list[Message]
    deadline: float
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def everything(self) -> list[Delivery]:
        return self.greetings + self.main


def deliver_through_a_crash(soak: Soak, postgres: EmbeddedPostgres, server: GunicornServer) -> None:
    """The greetings, then the main deliveries while PostgreSQL crashes once; every answer checked."""
    args, url = soak.args, server.url + "/api/webhook/kapso"
    started = time.monotonic()
    run_senders(url, soak.greetings, args.threads, args.compress, 0, soak.deadline)
    outage: dict = {}
    crash = crash_postgres(postgres, args.crash_at * args.seconds, args.down, outage)
    main_started = time.monotonic()
    run_senders(url, soak.main, args.threads, args.compress, args.seconds, soak.deadline)
    crash.join()
    soak.figures["postgres_phase_seconds"] = round(time.monotonic() - started, 1)
    soak.figures["postgres_down_seconds"] = round(outage["restarted_at"] - outage["killed_at"], 1)
    print(f"postgres: {soak.figures['postgres_phase_seconds']:.1f} s; crash at "
          f"{outage['killed_at'] - main_started:.1f} s, up again {soak.figures['postgres_down_seconds']:.1f} s later",
          flush=True)
    check_answers(soak.everything, soak.failures, "postgres")
    unanswered = [d for d in soak.everything if d.attempts and d.attempts[-1][0] != "200"]
    for d in unanswered:
        print(f"  {d.key}: " + ", ".join(f"{status} at {at - outage['killed_at']:+.1f} s ({s:.2f} s)"
                                         for (status, s), at in zip(d.attempts, d.started, strict=True))
              + " (relative to the crash)", flush=True)
    if unanswered:
        print("gunicorn log, last lines:\n" + "\n".join(server.log().splitlines()[-15:]), flush=True)


def check_stored(soak: Soak, database_url: str) -> dict[str, int]:
    """Every valid message stored exactly once, no poison event, one contact per sender."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT kapso_message_id, count(*) FROM messages GROUP BY 1").fetchall()
        contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
    stored = dict(rows)
    expected_ids = {m.id for m in soak.messages}
    missing, extra = expected_ids - stored.keys(), stored.keys() - expected_ids
    twice = [k for k, n in stored.items() if n != 1]
    if missing:
        soak.failures.append(f"postgres: {len(missing)} valid messages missing, e.g. {sorted(missing)[:3]}")
    if extra:
        soak.failures.append(f"postgres: {len(extra)} unexpected messages stored, e.g. {sorted(extra)[:3]}")
    if twice:
        soak.failures.append(f"postgres: {len(twice)} messages stored more than once")
    if contacts != soak.args.senders:
        soak.failures.append(f"postgres: {contacts} contacts, expected {soak.args.senders}")
    return {"stored_in_postgres": sum(stored.values()), "missing": len(missing), "unexpected": len(extra),
            "stored_more_than_once": len(twice)}


def replay_and_compare(soak: Soak, standin: ConvexStandin, server: GunicornServer) -> None:
    """The same deliveries into the stand-in's webhook, then every sender looked up on both routes."""
    ConvexAdmin(standin.url, API_KEY).import_dataset({"workspaces": [WORKSPACE], "contacts": []})
    seconds = replay_into_convex(standin.url + "/webhook/kapso", soak.greetings, soak.args.threads)
    seconds += replay_into_convex(standin.url + "/webhook/kapso", soak.main, 2)
    print(f"convex stand-in: {len(soak.everything)} deliveries replayed in {seconds:.1f} s", flush=True)
    soak.figures["convex_standin_replay_seconds"] = round(seconds, 1)
    soak.figures["convex_standin_messages_per_second"] = round(len(soak.messages) / seconds)
    check_answers(soak.everything, soak.failures, "convex")
    problems = 0
    with requests.Session() as session:
        for s, want in expected_lookups(soak.messages, soak.args.senders).items():
            params = {"phone": f"0813{s:08d}", "workspace_id": WORKSPACE["id"]}
            got = [(a.status_code, a.json()) for a in (
                session.get(server.url + route, params=params, headers={"x-api-key": API_KEY}, timeout=30)
                for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex"))]
            if got[0] != got[1] or got[0] != (200, want):
                problems += 1
                if problems <= 5:
                    soak.failures.append(f"lookup of sender {s}: supabase {got[0]} convex {got[1]} expected {want}")
    if problems > 5:
        soak.failures.append(f"... {problems} senders' lookups differ in all")
    soak.figures["lookups_differing"] = problems


def run_soak(soak: Soak) -> None:
    with durable_postgres({"workspaces": [WORKSPACE]}) as (tmp, postgres):  # durable: a crash must lose nothing
        standin = ConvexStandin(API_KEY, port=free_port(), log_file=tmp / "standin.log", webhook_secret=SECRET)
        server = None
        try:
            standin.start()
            server = GunicornServer({"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY,
                                     "CONVEX_SITE_URL": standin.url, "KAPSO_WEBHOOK_SECRET": SECRET,
                                     "DEFAULT_REGION": "ID"}, tmp / "gunicorn.log")
            deliver_through_a_crash(soak, postgres, server)
            soak.figures.update(check_stored(soak, postgres.url))
            replay_and_compare(soak, standin, server)
            if "Traceback" in server.log():
                soak.failures.append("gunicorn logged a traceback")
        finally:
            if server is not None:
                server.stop()
            standin.stop()


def summary(soak: Soak) -> dict[str, Any]:
    everything, args = soak.everything, soak.args
    attempts = [a for d in everything for a in d.attempts]
    answers = [d.answer or {} for d in everything]
    return {
        "setup": dict(vars(args)), "retry_schedule_seconds": [s / args.compress for s in KAPSO_RETRIES],
        "deliveries": len(everything), "greetings": len(soak.greetings),
        "singles": sum(d.label == "single" for d in everything), "batches": sum(d.label == "batch" for d in everything),
        "replays": sum(d.label == "replay" for d in everything),
        "poison_or_messageless_events": sum(d.poison for d in everything),
        "valid_messages": len(soak.messages),
        "answers_stored_sum": sum(a.get("stored", 0) for a in answers),
        "answers_duplicates_sum": sum(a.get("duplicates", 0) for a in answers),
        "attempts": len(attempts), "retries": len(attempts) - len(everything),
        "deliveries_retried": sum(len(d.attempts) > 1 for d in everything),
        "most_attempts_for_one_delivery": max(len(d.attempts) for d in everything),
        "deliveries_never_200": sum(not d.attempts or d.attempts[-1][0] != "200" for d in everything),
        "worst_answer_ms": round(max(s for _, s in attempts) * 1000, 1),
        "p50_answer_ms": round(sorted(s for _, s in attempts)[len(attempts) // 2] * 1000, 1),
        "answer_status_histogram": dict(Counter(status for status, _ in attempts).most_common()),
        "convex_answer_histogram": dict(Counter(d.convex[0] if d.convex else "not sent" for d in everything)),
        "senders_looked_up": args.senders, **soak.figures,
        "failures": soak.failures, "passed": not soak.failures,
    }


def main() -> int:
    args = parse_args()
    greetings, main_deliveries, messages = plan(args.messages, args.senders, args.seed)
    soak = Soak(args, greetings, main_deliveries, messages, time.monotonic() + args.max_seconds)
    print(f"soak: {len(messages)} messages from {args.senders} senders in {len(soak.everything)} deliveries "
          f"({sum(d.label == 'replay' for d in soak.everything)} replays, "
          f"{sum(d.poison for d in soak.everything)} poison or message-less events)", flush=True)
    run_soak(soak)
    result = summary(soak)
    write_results(result)
    for failure in soak.failures:
        print("FAIL " + failure, file=sys.stderr)
    print("soak: " + ("passed" if not soak.failures else f"FAILED ({len(soak.failures)} problems)"))
    return 1 if soak.failures else 0


def write_results(result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"soak-{date.today().isoformat()}-{platform.node()}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    r = result
    lines = [
        f"# Soak: {r['valid_messages']} messages, PostgreSQL crashed once — {'passed' if r['passed'] else 'FAILED'}",
        "",
        f"{r['deliveries']} deliveries ({r['greetings']} greetings, {r['singles']} single events, "
        f"{r['batches']} batches, {r['replays']} replays; {r['poison_or_messageless_events']} poison or "
        f"message-less events) from {r['setup']['threads']} Kapso-like senders to gunicorn (2 gevent "
        f"workers, the project's gunicorn.conf.py) on a durable embedded PostgreSQL, stopped `immediate` "
        f"{r['setup']['crash_at']:.0%} into the "
        f"run and started again {r['postgres_down_seconds']} s later. Retries on Kapso's schedule / "
        f"{r['setup']['compress']:g}: {r['retry_schedule_seconds']} s.",
        "",
        "| | |", "|---|---:|",
        f"| valid messages stored in PostgreSQL (exactly once) | {r['stored_in_postgres']} / {r['valid_messages']} |",
        f"| missing / unexpected (poison) / stored twice | {r['missing']} / {r['unexpected']} / "
        f"{r['stored_more_than_once']} |",
        f"| attempts / retries / deliveries retried | {r['attempts']} / {r['retries']} / {r['deliveries_retried']} |",
        f"| most attempts for one delivery / never answered 200 | {r['most_attempts_for_one_delivery']} / "
        f"{r['deliveries_never_200']} |",
        f"| answer time p50 / worst | {r['p50_answer_ms']} ms / {r['worst_answer_ms']} ms |",
        f"| answers by status | {', '.join(f'{k}: {v}' for k, v in r['answer_status_histogram'].items())} |",
        f"| Convex stand-in replay | {r['convex_standin_replay_seconds']} s "
        f"({r['convex_standin_messages_per_second']} messages/s; not Convex's speed) |",
        f"| senders whose two lookups differ or are not the expected ones | {r['lookups_differing']} / "
        f"{r['senders_looked_up']} |",
    ]
    if r["failures"]:
        lines += ["", "Failures:", *[f"- {f}" for f in r["failures"]]]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    sys.exit(main())
