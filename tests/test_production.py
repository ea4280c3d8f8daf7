"""Production behaviour: a real gunicorn, each fault injected for real.

Every test runs gunicorn with gunicorn.conf.py, and breaks a PostgreSQL or
Convex stand-in of its own (stopped, crashed, locked, killed, slowed by a
delaying TCP proxy) or gunicorn itself (SIGKILL to a worker, SIGTERM to the
master). The load is Python threads, each with its own requests.Session,
bounded in count and time, on loopback. Bounds carry generous margins: they
say "nothing hung", not "this machine is fast".
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import psycopg
import requests

from helpers import (
    API_KEY,
    CLIENT_TIMEOUT,
    CONVEX_ROUTE,
    PG_ROUTE,
    Answer,
    ask,
    assert_clean_log,
    assert_found,
    assert_section_3,
    load_contract,
    wait_until,
    workers,
)
from services.convex.admin import ConvexAdmin
from tools.servers import GunicornServer

# gunicorn.conf.py and services/config.py defaults, which most tests keep.
POOL_TIMEOUT = 2.0
GRACEFUL_TIMEOUT = 20
DEMO = load_contract("demo_data.json")
TIMING = re.compile(r"^timing route=\S+ backend=\S+ method=\S+ status=(\d+) found=\S+ total_ms=([\d.]+) ", re.M)


class Load:
    """`concurrency` threads, each with its own Session, asking `route` until stopped."""

    def __init__(self, url: str, concurrency: int, route: str = PG_ROUTE, limit_seconds: float = 60) -> None:
        self.url, self.route, self.limit = url, route, limit_seconds
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline:
                answer = ask(session, self.url, self.route)
                self.answers.append(answer)
                if answer.status is None:
                    time.sleep(0.01)  # refused: do not spin

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hung"


def server_timings(server: GunicornServer) -> list[tuple[int, float]]:
    """(status, total_ms) of every docs/contract.md §6 timing line gunicorn logged so far."""
    return [(int(status), float(ms)) for status, ms in TIMING.findall(server.log())]


def test_postgres_down_at_start_then_up_serves_without_a_restart(gunicorn, own_postgres):
    pg = own_postgres(DEMO)
    pg.stop()
    server = gunicorn(DATABASE_URL=pg.url)  # starts although its database is down
    pids = workers(server)
    with requests.Session() as session:
        health = session.get(server.url + "/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = session.get(server.url + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "checks": {"postgres": "unavailable", "convex": "ok"},
                                "breakers": {"postgres": "closed", "convex": "closed"}}
        for _ in range(3):
            answer = ask(session, server.url)
            assert_section_3(answer, 503)
            assert answer.elapsed < 2, f"a lookup took {answer.elapsed:.2f} s to say the database is down"

        pg.start()
        back = time.monotonic()
        while (answer := ask(session, server.url)).status != 200:
            assert_section_3(answer, 503)
            assert time.monotonic() - back < 2, "lookups did not recover within 2 s"
        assert time.monotonic() - back < 2, "lookups did not recover within 2 s"
        assert_found(answer)
        assert all(ask(session, server.url).status == 200 for _ in range(20))
        ready = session.get(server.url + "/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "convex": "ok"},
                                "breakers": {"postgres": "closed", "convex": "closed"}}
    assert workers(server) == pids, "no worker was restarted"
    assert_clean_log(server)


def test_postgres_crash_and_restart_under_load(gunicorn, own_postgres):
    """30 s at concurrency 16; PostgreSQL crashed (immediate stop) at 10 s, started again at 14 s."""
    pg = own_postgres(DEMO)
    server = gunicorn(DATABASE_URL=pg.url)
    with requests.Session() as session:
        assert_found(ask(session, server.url))
    started = time.monotonic()
    with Load(server.url, concurrency=16, limit_seconds=40) as load:
        # Deliberate sleeps: the load runs for fixed phases (before, during and after the crash).
        time.sleep(10)
        pg.stop("immediate")
        time.sleep(4)
        pg.start()
        restarted = time.monotonic()
        time.sleep(max(0.0, started + 30 - time.monotonic()))
    answers = load.answers
    assert len(answers) > 1000
    for answer in answers:
        if answer.status == 200:
            assert_found(answer)
        else:
            assert_section_3(answer, 503)
    assert any(a.status == 503 for a in answers), "the outage was seen"
    # Bounds: the configured ones added up: a probe connection (connect timeout 2 s), one
    # pool wait plus one more for the single retry of a read on a dropped connection, the
    # statement timeout (2 s), and 1 s of margin for this shared 2-core machine; a client
    # may also queue behind 2 x 4 busy threads at concurrency 16.
    server_bound_ms = (2 + 2 * POOL_TIMEOUT + 2 + 1) * 1000
    assert max(ms for _, ms in server_timings(server)) < server_bound_ms
    assert max(a.elapsed for a in answers) < 2 * server_bound_ms / 1000
    recovered = [a for a in answers if a.started > restarted + 3]
    assert len(recovered) > 100 and all(a.status == 200 for a in recovered), "200s again after the restart"
    assert_clean_log(server)


def test_pool_exhausted_answers_503_after_the_pool_timeout(gunicorn, postgres, demo):
    """One worker, 2 connections, 8 threads: 6 lookups stuck behind a table lock need 6 connections."""
    server = gunicorn(WEB_CONCURRENCY="1", GUNICORN_THREADS="8", DATABASE_POOL_MIN_SIZE="2",
                      DATABASE_POOL_MAX_SIZE="2", DATABASE_POOL_TIMEOUT="1", DATABASE_STATEMENT_TIMEOUT_MS="10000")
    with requests.Session() as session:
        assert_found(ask(session, server.url))  # the worker's schema check is done before the lock
    results: list[Answer] = []
    with psycopg.connect(postgres.url) as locker:
        locker.execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        threads = [threading.Thread(target=lambda: results.append(ask(requests.Session(), server.url)))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(3)  # deliberate: requests held behind the lock for 3 s, then counted
        stuck = len(results)
        locker.rollback()  # releases the lock: the 2 lookups holding connections finish
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    assert stuck == 4 and len(results) == 6, "nothing hangs"
    refused = [a for a in results if a.status != 200]
    assert len(refused) == 4
    for answer in refused:
        assert_section_3(answer, 503)
        assert 1 - 0.1 <= answer.elapsed < 1 + 1, f"503 after {answer.elapsed:.2f} s, the pool timeout is 1 s"
    for answer in results:
        if answer.status == 200:
            assert_found(answer)
            assert answer.elapsed >= 3 - 0.1, "it waited for the lock, holding its connection"
    with requests.Session() as session:
        assert_found(ask(session, server.url))
    assert_clean_log(server)


def test_convex_killed_then_restarted_recovers_without_a_restart(gunicorn, demo, own_standin):
    convex_standin = own_standin(DEMO)
    server = gunicorn(CONVEX_SITE_URL=convex_standin.url, CONVEX_TIMEOUT="1")
    pids = workers(server)
    with requests.Session() as session:
        before = ask(session, server.url, CONVEX_ROUTE)
        assert_found(before)

        convex_standin.process.kill()
        convex_standin.process.wait()
        for _ in range(3):
            answer = ask(session, server.url, CONVEX_ROUTE)
            assert_section_3(answer, 503)
            assert answer.elapsed < 1 + 1
        ready = session.get(server.url + "/readyz", timeout=5)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable" and body["checks"] == {"postgres": "ok", "convex": "unavailable"}
        assert body["breakers"]["postgres"] == "closed"
        assert_found(ask(session, server.url))  # the PostgreSQL route does not care

        convex_standin.start()
        ConvexAdmin(convex_standin.url, API_KEY).import_dataset(DEMO)
        after = ask(session, server.url, CONVEX_ROUTE)
        assert after.status == 200 and after.body == before.body
        assert session.get(server.url + "/readyz", timeout=5).status_code == 200
    assert workers(server) == pids, "no worker was restarted"
    assert_clean_log(server)


def test_convex_slower_than_its_timeout_is_504_then_recovers(gunicorn, demo, standin, convex, slowed_proxy):
    convex.import_dataset(DEMO)
    proxy = slowed_proxy(standin.url, 0.0)
    server = gunicorn(CONVEX_SITE_URL=f"http://127.0.0.1:{proxy.port}", CONVEX_TIMEOUT="1")
    with requests.Session() as session:
        assert_found(ask(session, server.url, CONVEX_ROUTE))
        proxy.delay = 1.5  # each way: the answer comes 3 s after the question
        for _ in range(2):
            answer = ask(session, server.url, CONVEX_ROUTE)
            assert_section_3(answer, 504)
            assert 1 - 0.1 <= answer.elapsed < 1 + 1, f"504 after {answer.elapsed:.2f} s, CONVEX_TIMEOUT is 1 s"
        assert_found(ask(session, server.url))  # the PostgreSQL route does not care
        proxy.delay = 0.0
        assert_found(ask(session, server.url, CONVEX_ROUTE))
    assert_clean_log(server)


def test_sigkilled_worker_is_replaced_under_load(gunicorn, demo):
    server = gunicorn()
    before = workers(server)
    assert len(before) == 2
    with Load(server.url, concurrency=8, limit_seconds=30) as load:
        time.sleep(3)  # deliberate: the load runs 3 s before the kill and 3 s after the replacement
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: len(workers(server) - before) == 1 and len(workers(server)) == 2, 15,
                   "gunicorn replacing the killed worker")
        replaced = time.monotonic()
        time.sleep(3)
    answers = load.answers
    errors = [a for a in answers if a.status != 200]
    assert len(answers) > 500 and len(errors) < len(answers) / 100, f"{len(errors)} errors in {len(answers)}"
    for answer in errors:
        if answer.status is not None:
            assert_section_3(answer, 502, 503, 504)
        else:
            assert killed - 0.5 <= answer.finished, "connection errors only from the killed worker"
    for answer in answers:
        if answer.status == 200:
            assert_found(answer)
    after = [a for a in answers if a.started > replaced + 0.5]
    assert len(after) > 100 and all(a.status == 200 for a in after)
    assert victim not in workers(server)
    assert_clean_log(server)


def test_sigterm_drains_in_flight_requests_and_exits_within_the_graceful_timeout(gunicorn, demo, standin, convex,
                                                                                 slowed_proxy):
    """Slow Convex lookups (about 2 s through a delaying proxy) are in flight, plus a load, when SIGTERM comes."""
    convex.import_dataset(DEMO)
    proxy = slowed_proxy(standin.url, 1.0)
    server = gunicorn(CONVEX_SITE_URL=f"http://127.0.0.1:{proxy.port}", CONVEX_TIMEOUT="10")
    slow: list[Answer] = []
    with Load(server.url, concurrency=4, limit_seconds=30) as load:
        time.sleep(1)  # deliberate: load and slow requests in flight before SIGTERM
        threads = [threading.Thread(target=lambda: slow.append(ask(requests.Session(), server.url, CONVEX_ROUTE)))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        term = time.monotonic()
        server.process.wait(GRACEFUL_TIMEOUT + 10)
        exited = time.monotonic() - term
        for thread in threads:
            thread.join(CLIENT_TIMEOUT)
    assert exited < GRACEFUL_TIMEOUT, f"gunicorn took {exited:.1f} s to stop"
    assert server.process.returncode == 0
    assert len(slow) == 4
    for answer in slow:
        assert answer.started < term < answer.finished, "it was in flight when SIGTERM came"
        assert_found(answer)
    answered = [a for a in load.answers if a.status is not None]
    assert len(answered) > 50
    for answer in answered:
        assert_found(answer)
    assert all(a.started > term for a in load.answers if a.status is None), "no request before SIGTERM was dropped"
    assert_clean_log(server)
