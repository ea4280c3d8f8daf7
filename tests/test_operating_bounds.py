"""Operating bounds (docs/contract.md §11) against real gunicorn, PostgreSQL and the stand-in.

Slow and idle clients, oversized request heads, a frozen PostgreSQL and a
frozen Convex (SIGSTOP: the kernel still accepts and acknowledges, the
process answers nothing), the access log, gunicorn's own settings and the
embedded PostgreSQL's port. Timed asserts only say what cannot flake on a
shared machine: answered, and far inside the timeouts a sick backend or a
slow client could impose. How close to the baseline the latencies stay is
measured as ratios by `make bench`, never here.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests

from helpers import (
    API_KEY,
    BAD_INPUT_ROWS,
    CONVEX_ROUTE,
    PG_ROUTE,
    Answer,
    ask,
    assert_clean_log,
    assert_found,
    assert_section_3,
    load_contract,
    postgres_processes,
    sign,
    signal_each,
    wait_until,
    workers,
)
from services.config import ConfigError, load_settings
from tools.devstack import start_embedded_postgres
from tools.embedded_pg import EmbeddedPostgres, PortInUse
from tools.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = load_contract("demo_data.json")
SCENARIO = load_contract("webhook_scenario.json")
SECRET = "bounds-webhook-secret"
STATEMENT_TIMEOUT_S = 2.0  # services/config.py default, which these servers keep


def p99(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[98]


def lookups_for(url: str, seconds: float, route: str = PG_ROUTE) -> list[Answer]:
    """One keep-alive client asking `route` back to back for `seconds`."""
    answers = []
    ends = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < ends:
            answers.append(ask(session, url, route))
    return answers


class Looping:
    """`count` clients asking `route` in a loop, each pausing `pause` s after a 503
    (a client that backs off a little, not the full Retry-After).

    They run in a process of their own: as threads of this one they would share its GIL with the
    client that measures, whose latency would then include waiting for the load's GIL slices, a
    cost of the test harness and not of the server under test. Their answers arrive in batches."""

    def __init__(self, url: str, count: int, route: str, pause: float = 0.1) -> None:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._batches = context.Queue()
        self._process = context.Process(target=_loop, args=(url, count, route, pause, self._stop, self._batches),
                                        daemon=True)
        self._answers: list[Answer] = []
        self._hung: bool | None = None

    @property
    def answers(self) -> list[Answer]:
        """The answers received so far."""
        while self._hung is None:
            try:
                batch = self._batches.get_nowait()
            except queue.Empty:
                break
            self._take(batch)
        return self._answers

    def _take(self, batch: list[Answer] | bool) -> None:
        if isinstance(batch, bool):
            self._hung = batch  # the last message: whether a client was still asking after 30 s
        else:
            self._answers.extend(batch)

    def __enter__(self) -> Looping:
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._hung is None:
            self._take(self._batches.get(timeout=60))
        self._process.join(10)
        assert not self._hung, "a looping client hung"


def _loop(url: str, count: int, route: str, pause: float, stop, batches) -> None:
    """The looping clients' process: `count` threads, their answers sent every 50 ms, then whether any hung."""
    answers: list[Answer] = []

    def run() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answer = ask(session, url, route)
                answers.append(answer)
                if answer.status != 200:
                    stop.wait(pause)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    sent = 0
    while not stop.wait(0.05):
        batch, sent = answers[sent:], len(answers)  # list appends and slices are atomic under the GIL
        batches.put(batch)
    for thread in threads:
        thread.join(30)
    batches.put(answers[sent:])
    batches.put(any(thread.is_alive() for thread in threads))


def delivery(n: int) -> tuple[bytes, dict[str, str]]:
    """A signed copy of the scenario's first delivery with its own message id (`n`)."""
    first = SCENARIO["deliveries"][0]
    raw = json.dumps(first["body"]).replace('"wamid.', f'"wamid.bounds{n}.').encode()
    return raw, {**first["headers"], "X-Webhook-Signature": sign(raw, SECRET)}


def post_webhook(url: str, n: int, timeout: float = 20) -> tuple[int, float, requests.Response]:
    raw, headers = delivery(n)
    started = time.monotonic()
    response = requests.post(url + "/api/webhook/kapso", data=raw, headers=headers, timeout=timeout)
    return response.status_code, time.monotonic() - started, response


def message_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


# --- slow clients and request limits -----------------------------------------------------------------


def test_slow_and_idle_connections_do_not_delay_lookups(gunicorn, demo, tmp_path):
    """200 connections each of partial heads, partial bodies and idle ones, all held for 20 s at once
    (reopened whenever the server closes one), while a normal client looks up back to back."""
    server = gunicorn()
    lookups_for(server.url, 1)  # warm: pools, prepared statements
    baseline = lookups_for(server.url, 5)
    assert all(a.status == 200 for a in baseline)
    attack = subprocess.Popen([sys.executable, "-m", "tools.slow_clients", "--port", str(server.port),
                               "--count", "200", "--modes", "head,body,idle", "--seconds", "20"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(attack.stdout.readline())
        assert ready.get("ready"), ready
        during: list[Answer] = []
        while attack.poll() is None:
            during += lookups_for(server.url, 0.5)
        report = json.loads(attack.stdout.readline())
    finally:
        attack.kill()
        attack.wait()
    assert report["done"] and report["refused"] == 0, report
    assert len(during) > 1000
    for answer in during:
        assert_found(answer)
    before, after = p99([a.elapsed for a in baseline]), p99([a.elapsed for a in during])
    # What cannot flake on a shared machine: far below any timeout a slow client could make a caller wait
    # for (the ratio to the baseline is make bench's slow_client_p99_ratio).
    assert after < 0.5, f"lookup p99 {after * 1000:.1f} ms with slow clients, {before * 1000:.1f} ms before"
    assert_clean_log(server)


def _refused_within(server_port: int, head: bytes) -> tuple[float, bytes]:
    """Send `head` from another thread; return (seconds to the answer's first bytes, the answer)."""
    sock = socket.create_connection(("127.0.0.1", server_port))
    sent = threading.Event()

    def send() -> None:
        try:
            sock.sendall(head)
        except OSError:
            pass  # the server answered and closed before the rest was sent
        sent.set()

    started = time.perf_counter()
    threading.Thread(target=send, daemon=True).start()
    answer = sock.recv(65536)
    elapsed = time.perf_counter() - started
    while b"\r\n\r\n" in answer and len(answer) < answer.index(b"\r\n\r\n") + 4 + 30 and (more := sock.recv(65536)):
        answer += more
    sent.wait(10)
    sock.close()
    return elapsed, answer


@pytest.mark.parametrize(("name", "head", "status", "error"), [
    ("8 MiB request line", b"GET /healthz?" + b"a" * (8 << 20) + b" HTTP/1.1\r\nHost: k\r\n\r\n", 414, "URI too long"),
    ("100 KiB in one header", b"GET /healthz HTTP/1.1\r\nHost: k\r\nX-Big: " + b"b" * (100 << 10) + b"\r\n\r\n",
     431, "Request headers too large"),
    ("100 KiB in 1 KiB headers", b"GET /healthz HTTP/1.1\r\nHost: k\r\n"
     + b"".join(b"X-H%d: " % i + b"h" * 1019 + b"\r\n" for i in range(100)) + b"\r\n", 431,
     "Request headers too large"),
])
def test_oversized_request_heads_get_json_at_once(live, name, head, status, error):
    port = int(live.url.rsplit(":", 1)[1])
    _refused_within(port, head)  # the first of a kind may pay for imports and page faults
    elapsed, answer = _refused_within(port, head)
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"Content-Type: application/json" in headers
    assert json.loads(body) == {"error": error}
    assert elapsed < 1, f"{name}: answered after {elapsed * 1000:.1f} ms"  # at once, not at a timeout
    assert requests.get(live.url + "/healthz", timeout=5).status_code == 200


def test_options_answers_json_405(live):
    response = requests.options(live.url + PG_ROUTE, headers={"x-api-key": API_KEY}, timeout=5)
    assert (response.status_code, response.headers["Content-Type"]) == (405, "application/json")
    assert response.json() == {"error": "Method not allowed"}
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    response = requests.options(live.url + "/api/webhook/kapso", timeout=5)
    assert response.status_code == 405 and response.headers["Content-Type"] == "application/json"


# --- frozen backends ---------------------------------------------------------------------------------


def test_postgres_frozen_answers_in_time_and_leaves_convex_alone(gunicorn, own_postgres, standin, convex):
    pg = own_postgres(DEMO, SCENARIO["dataset"], durable=False)
    convex.import_dataset(DEMO)
    server = gunicorn(DATABASE_URL=pg.url, KAPSO_WEBHOOK_SECRET=SECRET)
    pids = workers(server)
    lookups_for(server.url, 1)
    lookups_for(server.url, 1, CONVEX_ROUTE)
    baseline = lookups_for(server.url, 3, CONVEX_ROUTE)
    assert all(a.status == 200 for a in baseline)
    stored_before = message_count(pg.url)
    results: dict[str, tuple] = {}

    def timed(name: str, call) -> threading.Thread:
        def run() -> None:
            started = time.monotonic()
            results[name] = (call(), time.monotonic() - started)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    stop = postgres_processes(pg)
    signal_each(stop, signal.SIGSTOP)
    try:
        with Looping(server.url, 8, PG_ROUTE) as pg_load:
            checks = [
                timed("lookup", lambda: ask(requests.Session(), server.url)),
                timed("webhook", lambda: post_webhook(server.url, 1)),
                timed("readyz", lambda: requests.get(server.url + "/readyz", timeout=20)),
            ]
            convex_during = lookups_for(server.url, 6, CONVEX_ROUTE)
            for thread in checks:
                thread.join(20)
    finally:
        signal_each(stop, signal.SIGCONT)
    resumed = time.monotonic()
    with requests.Session() as session:
        while (answer := ask(session, server.url)).status != 200:
            assert time.monotonic() - resumed < 2, "lookups did not recover within 2 s of SIGCONT"
            time.sleep(0.02)
        recovered = time.monotonic() - resumed
        assert_found(answer)
        for _ in range(20):
            assert_found(ask(session, server.url))
    assert recovered < 2

    lookup, elapsed = results["lookup"]
    assert_section_3(lookup, 503, 504)
    assert elapsed < STATEMENT_TIMEOUT_S + 1, f"a lookup took {elapsed:.2f} s with PostgreSQL frozen"
    assert lookup.status == 503 or lookup.retry_after
    (status, elapsed, response), _ = results["webhook"]
    assert status == 503 and response.json() == {"error": "Backend unavailable"}, response.text
    assert elapsed < 10, f"the webhook took {elapsed:.2f} s with PostgreSQL frozen"
    ready, elapsed = results["readyz"]
    assert ready.status_code == 503 and ready.json()["checks"] == {"postgres": "unavailable", "convex": "ok"}
    assert elapsed < 1, f"/readyz took {elapsed:.2f} s with PostgreSQL frozen"
    for answer in pg_load.answers:
        assert answer.status == 200 or answer.elapsed < STATEMENT_TIMEOUT_S + 1, answer
        if answer.status != 200:
            assert_section_3(answer, 503, 504)
    assert any(a.status == 503 and a.elapsed < 0.1 for a in pg_load.answers), "the breaker failed calls fast"

    assert all(a.status == 200 for a in convex_during), "the Convex route does not care"
    before, after = p99([a.elapsed for a in baseline]), p99([a.elapsed for a in convex_during])
    # Far below DATABASE_STATEMENT_TIMEOUT_MS: the frozen backend's waits never reach the Convex route.
    assert after < 0.5, f"Convex p99 {after * 1000:.1f} ms with PostgreSQL frozen, {before * 1000:.1f} before"

    assert message_count(pg.url) == stored_before, "nothing of the 503'd webhook was stored"
    assert workers(server) == pids, "no worker was restarted"
    assert_clean_log(server)


def test_convex_frozen_fails_fast_once_open_and_leaves_postgres_alone(gunicorn, demo, load, own_standin):
    convex_standin = own_standin(DEMO)
    load(SCENARIO["dataset"])
    server = gunicorn(CONVEX_SITE_URL=convex_standin.url, KAPSO_WEBHOOK_SECRET=SECRET)
    pids = workers(server)
    lookups_for(server.url, 1)
    lookups_for(server.url, 1, CONVEX_ROUTE)
    baseline = lookups_for(server.url, 3)
    assert all(a.status == 200 for a in baseline)
    webhooks = []
    convex_standin.process.send_signal(signal.SIGSTOP)
    try:
        with Looping(server.url, 32, CONVEX_ROUTE) as convex_load:
            opened = wait_until(lambda: any(a.status == 503 for a in convex_load.answers), 10, "the breaker opening")
            pg_during = lookups_for(server.url, 3)
            for n in range(3):
                webhooks.append(post_webhook(server.url, 100 + n))
            pg_during += lookups_for(server.url, 3)
            open_answers = [a for a in convex_load.answers if a.status == 503]
    finally:
        convex_standin.process.send_signal(signal.SIGCONT)
    resumed = time.monotonic()

    assert opened < 2 * 2 + 1, "CONVEX_TIMEOUT (2 s) times out the first calls, then the breaker opens"
    for answer in convex_load.answers:
        assert answer.status in (503, 504), answer
        assert_section_3(answer, 503, 504)
    assert len(open_answers) > 100
    assert statistics.median(a.elapsed for a in open_answers) < 0.5, "an open breaker answers 503 at once"
    served = [ms for status, ms, route in _timings(server) if route == CONVEX_ROUTE and status == 503]
    assert p99([ms / 1000 for ms in served]) < 0.5, "inside the app, an open breaker's 503 does not wait"

    for answer in pg_during:
        assert_found(answer)
    before, after = p99([a.elapsed for a in baseline]), p99([a.elapsed for a in pg_during])
    # Far below CONVEX_TIMEOUT: the frozen backend's waits never reach the PostgreSQL route.
    assert after < 0.5, f"PostgreSQL p99 {after * 1000:.1f} ms with Convex frozen, {before * 1000:.1f} before"
    for status, elapsed, response in webhooks:
        assert status == 200 and response.json()["stored"] == 1, response.text
        assert elapsed < 1, f"a webhook took {elapsed:.2f} s with Convex frozen"

    # Closed again on its own: every worker's breaker probes after its pause and closes.
    with requests.Session() as session:
        wait_until(lambda: all(ask(session, server.url, CONVEX_ROUTE).status == 200 for _ in range(10)), 10,
                   "the Convex route recovering")
        wait_until(lambda: all(session.get(server.url + "/readyz", timeout=5).json()["breakers"]["convex"] == "closed"
                               for _ in range(6)), 10, "/readyz reporting the breaker closed")
    assert time.monotonic() - resumed < 10
    assert workers(server) == pids, "no worker was restarted"
    assert_clean_log(server)


def _timings(server) -> list[tuple[int, float, str]]:
    import re

    line = re.compile(r"^timing route=(\S+) backend=\S+ method=\S+ status=(\d+) found=\S+ total_ms=([\d.]+) ", re.M)
    return [(int(status), float(ms), route) for route, status, ms in line.findall(server.log())]


# --- logs and settings -------------------------------------------------------------------------------


def test_access_log_holds_no_phone_key_or_signature(gunicorn, demo, convex, tmp_path):
    """The access log on, with a format that asks for the query string, the key and the signature."""
    convex.import_dataset(load_contract("demo_data.json"))
    greedy = ('%(h)s "%(r)s" %(s)s q=%(q)s key=%({x-api-key}i)s sig=%({x-webhook-signature}i)s '
              'raw=%({raw_uri}e)s qs=%({query_string}e)s ref=%(f)s ua=%(a)s')
    server = gunicorn(GUNICORN_ACCESS_LOG="-", KAPSO_WEBHOOK_SECRET=SECRET,
                      GUNICORN_CMD_ARGS=f"--access-logformat '{greedy}'")
    for row in BAD_INPUT_ROWS:
        requests.request(row.method, server.url + row.target, headers=row.headers, data=row.body, timeout=30)
    with requests.Session() as session:
        assert_found(ask(session, server.url))
        assert_found(ask(session, server.url, CONVEX_ROUTE))
        session.get(server.url + "/api/contacts/+6281234567890/0812-3456-7890", timeout=5,
                    headers={"Referer": "http://x/?phone=081234567890", "x-api-key": API_KEY})
    status, _, _ = post_webhook(server.url, 200)
    assert status == 200
    raw, headers = delivery(200)
    server.stop()  # the workers have flushed their last lines: no sleep before reading the log
    log = server.log_path.read_text()
    assert log.count('"GET /api/contacts/by-phone HTTP/1.1" 200') >= 1, "the access log is on"
    assert API_KEY not in log and SECRET not in log and headers["X-Webhook-Signature"] not in log
    for phone in ("81234567890", "812-3456-7890", "0812345678"):
        assert phone not in log, phone
    assert "key=- sig=- raw=- qs=-" in log


@pytest.mark.parametrize(("name", "value", "line"), [
    ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be between 1 and 256, got '0'"),
    ("WEB_CONCURRENCY", "two", "WEB_CONCURRENCY must be a number, got 'two'"),
    ("GUNICORN_WORKER_CONNECTIONS", "100.5", "GUNICORN_WORKER_CONNECTIONS must be a whole number, got '100.5'"),
    ("GUNICORN_TIMEOUT", "-1", "GUNICORN_TIMEOUT must be between 2 and 3600, got '-1'"),
    ("GUNICORN_KEEPALIVE", "x", "GUNICORN_KEEPALIVE must be a number, got 'x'"),
    ("GUNICORN_LOG_LEVEL", "loud", "GUNICORN_LOG_LEVEL must be one of debug, info, warning, error, critical, "
                                   "got 'loud'"),
    ("GUNICORN_BIND", "nowhere", "GUNICORN_BIND must be host:port or unix:path, got 'nowhere'"),
    ("BREAKER_FAILURES", "0", "BREAKER_FAILURES must be between 1 and 10000, got '0'"),
    ("DATABASE_MAX_CONCURRENCY", "lots", "DATABASE_MAX_CONCURRENCY must be a number, got 'lots'"),
    ("EMBEDDED_PG_PORT", "80", "EMBEDDED_PG_PORT must be between 1024 and 65535, got '80'"),
])
def test_a_bad_server_setting_stops_the_start_with_one_line(env, name, value, line):
    commands = [[sys.executable, "-m", "tools.serve"]]
    if not (name == "WEB_CONCURRENCY" and not value.isdigit()):
        # gunicorn itself reads a WEB_CONCURRENCY that is no number before any configuration file.
        commands.append([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"])
    for command in commands:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30,
                                env={**os.environ, **env, "PORT": str(free_port()), name: value})
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [f"kontak: configuration error: {line}"], command


def test_embedded_port_held_by_another_process_is_one_clear_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as refused:
            EmbeddedPostgres(tmp_path / "pg", port).start()
        assert str(refused.value).count("\n") == 0 and f"127.0.0.1:{port}" in str(refused.value)
        with pytest.raises(SystemExit) as stopped:
            start_embedded_postgres(tmp_path / "pg", port)
        message = str(stopped.value.code)
        assert message.startswith("kontak: ") and "\n" not in message
        assert "EMBEDDED_PG_PORT" in message and str(port) in message
    assert load_settings({"EMBEDDED_PG_PORT": "54400"})["DATABASE_URL"].endswith(":54400/postgres")
    with pytest.raises(ConfigError):
        load_settings({"EMBEDDED_PG_PORT": "port"})
