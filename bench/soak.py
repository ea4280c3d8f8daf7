"""Soak (issue 11): Kapso-like senders deliver 5,000 messages while PostgreSQL crashes once.

Sender threads post signed deliveries to a real gunicorn on a durable embedded
PostgreSQL: single events and batches whose senders overlap, in random order,
with replays and poison events (docs/webhook.md section 3) mixed in. Each
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
import hashlib
import hmac
import json
import platform
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import requests

from commands.convex_admin import ConvexAdmin
from services.conversation_summary import summarize_conversation
from services.postgres.migrations import upgrade
from services.postgres.store import load_dataset
from tools.convex_standin import ConvexStandin
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import GunicornServer, free_port

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "soak-webhook-secret"
API_KEY = "soak-api-key"
PHONE_NUMBER_ID = "soak-phone-id"
WORKSPACE = {"id": "00000000-0000-4000-8000-00000000500a", "name": "Soak", "kapso_phone_id": PHONE_NUMBER_ID,
             "created_at": "2026-01-01T00:00:00.000Z"}
KAPSO_RETRIES = (10, 40, 90)  # seconds after a non-200, per Kapso's documentation
KAPSO_ANSWER_TIMEOUT = 10  # Kapso wants an answer within 10 s
BASE_TIME = 1_768_000_000  # 2026-01-09: every valid message time is in the past
PHRASES = ["Halo kak, mau tanya", "Berapa biaya kuliah di Australia?", "Saya mau ke UK", "ada beasiswa?",
           "IELTS saya 6.5", "visa butuh berapa lama?", "MBA atau master?", "S1 di Kanada", "ok", "terima kasih",
           "bisa telepon besok?", "untuk adik saya, bukan untuk saya", "masuk bulan depan"]
POISON_KINDS = ["nul_id", "long_id", "huge_id", "surrogate_id", "future", "before_2000", "huge_timestamp",
                "bad_phone", "unknown_workspace", "nul_type"]


@dataclass
class Message:
    id: str
    sender: int
    time: int
    content: str


@dataclass
class Delivery:
    key: str
    raw: bytes
    headers: dict[str, str]
    valid: int  # events that pass section 3
    poison: int  # events that are ignored
    label: str
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (status, seconds) per attempt
    started: list[float] = field(default_factory=list)  # monotonic start of each attempt
    answer: dict | None = None
    convex: tuple[str, dict | None] | None = None


def phone(sender: int) -> str:
    return f"+62813{sender:08d}"


def v2(message_id: str, seconds, sender_phone: str, content: str, name: str, *, kind: str = "text",
       phone_number_id: str = PHONE_NUMBER_ID) -> dict:
    return {"message": {"id": message_id, "timestamp": seconds if isinstance(seconds, str) else str(seconds),
                        "type": kind, "text": {"body": content},
                        "kapso": {"direction": "inbound", "status": "received"}},
            "conversation": {"id": f"conv-{sender_phone}", "phone_number": sender_phone,
                             "phone_number_id": phone_number_id, "kapso": {"contact_name": name}},
            "is_new_conversation": False, "phone_number_id": phone_number_id}


def poison_event(kind: str, n: int, rng: random.Random, senders: int) -> dict:
    """An event docs/webhook.md section 3 ignores; placeholders are spelled out in the raw text later."""
    sender = rng.randrange(senders)
    p, name, ok_time = phone(sender), f"Kontak {sender}", str(BASE_TIME + 10)
    return {
        "nul_id": lambda: v2(f"poison-nul-\u0000-{n}", ok_time, p, "racun visa", name),
        "long_id": lambda: v2(f"poison-long-{n}-".ljust(257, "x"), ok_time, p, "racun visa", name),
        "huge_id": lambda: v2(f"poison-huge-{n}-" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789",
                                                                         k=4096)), ok_time, p, "racun", name),
        "surrogate_id": lambda: v2(f"poison-sur-@SURROGATE@-{n}", ok_time, p, "racun visa", name),
        "future": lambda: v2(f"poison-future-{n}", "99999999999", p, "racun visa", name),
        "before_2000": lambda: v2(f"poison-old-{n}", "946684799", p, "racun visa", name),
        "huge_timestamp": lambda: v2(f"poison-hugets-{n}", "@HUGE_TIMESTAMP@", p, "racun visa", name),
        "bad_phone": lambda: v2(f"poison-phone-{n}", ok_time, "12", "racun visa", name),
        "unknown_workspace": lambda: v2(f"poison-ws-{n}", ok_time, p, "racun visa", name,
                                        phone_number_id="nobody-has-this-id"),
        "nul_type": lambda: v2(f"poison-type-{n}", ok_time, p, "racun visa", name, kind="te\u0000xt"),
    }[kind]()


def encode(body: dict) -> bytes:
    text = json.dumps(body)
    text = text.replace("@SURROGATE@", "\\udc00").replace('"@HUGE_TIMESTAMP@"', "1" + "0" * 399)
    return text.encode()


def make_delivery(key: str, body: dict, valid: int, poison: int, label: str, batch: bool) -> Delivery:
    raw = encode(body)
    headers = {"Content-Type": "application/json", "X-Webhook-Event": "whatsapp.message.received",
               "X-Idempotency-Key": key,
               "X-Webhook-Signature": hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()}
    if batch:
        headers["X-Webhook-Batch"] = "true"
    return Delivery(key, raw, headers, valid, poison, label)


def plan(messages_total: int, senders: int, seed: int) -> tuple[list[Delivery], list[Delivery], list[Message]]:
    """(greetings, main deliveries in sending order, every valid message)."""
    rng = random.Random(seed)
    # Each sender's first message is its greeting, delivered before the rest, so a contact's
    # created_at is the same whatever order the concurrent deliveries commit in.
    messages = [Message(f"wamid.soak-{s}-0", s, BASE_TIME + s, "Halo, saya Kontak " + str(s)) for s in range(senders)]
    rest_times = rng.sample(range(BASE_TIME + senders, BASE_TIME + senders + 10 * messages_total),
                            messages_total - senders)
    for i, seconds in enumerate(rest_times):
        sender = rng.randrange(senders)
        messages.append(Message(f"wamid.soak-{sender}-{i + 1}", sender, seconds, rng.choice(PHRASES)))
    event = {m.id: v2(m.id, m.time, phone(m.sender), m.content, f"Kontak {m.sender}") for m in messages}
    greetings = [make_delivery(f"greet-{m.sender}", event[m.id], 1, 0, "greeting", False) for m in messages[:senders]]

    rest = messages[senders:]
    rng.shuffle(rest)  # batches mix senders and times
    main: list[Delivery] = []
    poison_n = 0
    i = 0
    while i < len(rest):
        size = 1 if rng.random() < 0.3 else rng.randint(2, 25)
        chunk, i = rest[i:i + size], i + size
        events = [event[m.id] for m in chunk]
        poison = 0
        if rng.random() < 0.15:  # a poison event somewhere in the delivery
            events.insert(rng.randrange(len(events) + 1), poison_event(rng.choice(POISON_KINDS), poison_n, rng,
                                                                       senders))
            poison, poison_n = 1, poison_n + 1
        key = f"main-{len(main)}"
        if len(events) == 1:
            main.append(make_delivery(key, events[0], len(chunk), poison, "single", False))
        else:
            main.append(make_delivery(key, {"type": "whatsapp.message.received", "batch": True, "data": events},
                                      len(chunk), poison, "batch", True))
    for n in range(len(main) // 20):  # deliveries that are nothing but poison or carry no message
        kind = rng.choice([*POISON_KINDS, "conversation", "project"])
        if kind == "conversation":
            body = {"event": "whatsapp.conversation.ended", "conversation": {"id": "c", "phone_number": phone(0)},
                    "phone_number_id": PHONE_NUMBER_ID}
        elif kind == "project":
            body = {"event": "whatsapp.phone_number.created", "phone_number_id": PHONE_NUMBER_ID}
        else:
            body, poison_n = poison_event(kind, poison_n, rng, senders), poison_n + 1
        main.append(make_delivery(f"poison-only-{n}", body, 0, 1, "poison only", False))
    replays = [Delivery(d.key, d.raw, d.headers, d.valid, d.poison, "replay")
               for d in rng.sample(main, len(main) // 10)]
    main += replays
    rng.shuffle(main)
    return greetings, main, messages


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=300, help="distinct WhatsApp contacts")
    parser.add_argument("--threads", type=int, default=8, help="concurrent Kapso senders")
    parser.add_argument("--seconds", type=float, default=40, help="pace of the main phase")
    parser.add_argument("--compress", type=float, default=10,
                        help="Kapso's 10/40/90 s retry schedule divided by this")
    parser.add_argument("--crash-at", type=float, default=0.4, help="fraction of --seconds")
    parser.add_argument("--down", type=float, default=2.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    greetings, main_deliveries, messages = plan(args.messages, args.senders, args.seed)
    everything = greetings + main_deliveries
    failures: list[str] = []
    result: dict = {"setup": {k: v for k, v in vars(args).items()},
                    "retry_schedule_seconds": [s / args.compress for s in KAPSO_RETRIES]}
    print(f"soak: {len(messages)} messages from {args.senders} senders in {len(everything)} deliveries "
          f"({sum(d.label == 'replay' for d in everything)} replays, "
          f"{sum(d.poison for d in everything)} poison or message-less events)", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", free_port())  # durable: a crash must lose nothing committed
        postgres.start()
        standin = ConvexStandin(API_KEY, port=free_port(), log_file=Path(tmp) / "standin.log",
                                webhook_secret=SECRET)
        server = None
        try:
            with psycopg.connect(postgres.url, autocommit=True) as conn:
                upgrade(conn)
                load_dataset(conn, {"workspaces": [WORKSPACE]})
            standin.start()
            server = GunicornServer({"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY,
                                     "CONVEX_SITE_URL": standin.url, "KAPSO_WEBHOOK_SECRET": SECRET,
                                     "DEFAULT_REGION": "ID"}, Path(tmp) / "gunicorn.log")
            url = server.url + "/api/webhook/kapso"

            started = time.monotonic()
            run_senders(url, greetings, args.threads, args.compress, 0, deadline)
            outage: dict = {}
            crash = crash_postgres(postgres, args.crash_at * args.seconds, args.down, outage)
            main_started = time.monotonic()
            run_senders(url, main_deliveries, args.threads, args.compress, args.seconds, deadline)
            crash.join()
            pg_seconds = time.monotonic() - started
            print(f"postgres: {pg_seconds:.1f} s; crash at {outage['killed_at'] - main_started:.1f} s, "
                  f"up again {outage['restarted_at'] - outage['killed_at']:.1f} s later", flush=True)
            check_answers(everything, failures, "postgres")
            for d in everything:
                if d.attempts and d.attempts[-1][0] != "200":
                    print(f"  {d.key}: " + ", ".join(f"{status} at {at - outage['killed_at']:+.1f} s ({s:.2f} s)"
                                                     for (status, s), at in zip(d.attempts, d.started, strict=True))
                          + " (relative to the crash)", flush=True)
            if any(d.attempts and d.attempts[-1][0] != "200" for d in everything):
                print("gunicorn log, last lines:\n" + "\n".join(server.log().splitlines()[-15:]), flush=True)

            with psycopg.connect(postgres.url) as conn:
                rows = conn.execute("SELECT kapso_message_id, count(*) FROM messages GROUP BY 1").fetchall()
                contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
            stored = dict(rows)
            expected_ids = {m.id for m in messages}
            missing = expected_ids - stored.keys()
            extra = stored.keys() - expected_ids
            twice = [k for k, n in stored.items() if n != 1]
            if missing:
                failures.append(f"postgres: {len(missing)} valid messages missing, e.g. {sorted(missing)[:3]}")
            if extra:
                failures.append(f"postgres: {len(extra)} unexpected messages stored, e.g. {sorted(extra)[:3]}")
            if twice:
                failures.append(f"postgres: {len(twice)} messages stored more than once")
            if contacts != args.senders:
                failures.append(f"postgres: {contacts} contacts, expected {args.senders}")

            admin = ConvexAdmin(standin.url, API_KEY)
            admin.import_dataset({"workspaces": [WORKSPACE], "contacts": []})
            convex_seconds = replay_into_convex(standin.url + "/webhook/kapso", greetings, args.threads)
            convex_seconds += replay_into_convex(standin.url + "/webhook/kapso", main_deliveries, 2)
            print(f"convex stand-in: {len(everything)} deliveries replayed in {convex_seconds:.1f} s", flush=True)
            check_answers(everything, failures, "convex")

            expected = expected_lookups(messages, args.senders)
            lookup_problems = 0
            with requests.Session() as session:
                for s, want in expected.items():
                    params = {"phone": f"0813{s:08d}", "workspace_id": WORKSPACE["id"]}
                    answers = [session.get(server.url + route, params=params, headers={"x-api-key": API_KEY},
                                           timeout=30) for route in ("/api/contacts/by-phone",
                                                                     "/api/contacts/by-phone-convex")]
                    got = [(a.status_code, a.json()) for a in answers]
                    if got[0] != got[1] or got[0] != (200, want):
                        lookup_problems += 1
                        if lookup_problems <= 5:
                            failures.append(f"lookup of sender {s}: supabase {got[0]} convex {got[1]} "
                                            f"expected {want}")
            if lookup_problems > 5:
                failures.append(f"... {lookup_problems} senders' lookups differ in all")
            if server is not None and "Traceback" in server.log():
                failures.append("gunicorn logged a traceback")
        finally:
            if server is not None:
                server.stop()
            standin.stop()
            postgres.stop()

    attempts = [a for d in everything for a in d.attempts]
    retried = [d for d in everything if len(d.attempts) > 1]
    result.update({
        "deliveries": len(everything), "greetings": len(greetings),
        "singles": sum(d.label == "single" for d in everything), "batches": sum(d.label == "batch" for d in everything),
        "replays": sum(d.label == "replay" for d in everything),
        "poison_or_messageless_events": sum(d.poison for d in everything),
        "valid_messages": len(messages),
        "stored_in_postgres": sum(stored.values()), "missing": len(missing), "unexpected": len(extra),
        "stored_more_than_once": len(twice),
        "answers_stored_sum": sum((d.answer or {}).get("stored", 0) for d in everything),
        "answers_duplicates_sum": sum((d.answer or {}).get("duplicates", 0) for d in everything),
        "attempts": len(attempts), "retries": len(attempts) - len(everything),
        "deliveries_retried": len(retried), "most_attempts_for_one_delivery": max(len(d.attempts) for d in everything),
        "deliveries_never_200": sum(not d.attempts or d.attempts[-1][0] != "200" for d in everything),
        "worst_answer_ms": round(max(s for _, s in attempts) * 1000, 1),
        "p50_answer_ms": round(sorted(s for _, s in attempts)[len(attempts) // 2] * 1000, 1),
        "answer_status_histogram": dict(Counter(status for status, _ in attempts).most_common()),
        "postgres_phase_seconds": round(pg_seconds, 1),
        "postgres_down_seconds": round(outage["restarted_at"] - outage["killed_at"], 1),
        "convex_standin_replay_seconds": round(convex_seconds, 1),
        "convex_standin_messages_per_second": round(len(messages) / convex_seconds),
        "convex_answer_histogram": dict(Counter(d.convex[0] if d.convex else "not sent" for d in everything)),
        "senders_looked_up": args.senders, "lookups_differing": lookup_problems,
        "failures": failures, "passed": not failures,
    })
    write_results(result)
    for failure in failures:
        print("FAIL " + failure, file=sys.stderr)
    print("soak: " + ("passed" if not failures else f"FAILED ({len(failures)} problems)"))
    return 1 if failures else 0


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
