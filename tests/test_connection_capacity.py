"""More open connections than a worker serves never keep a caller waiting (docs/contract.md §11).

Idle keep-alive connections and clients that connect and send nothing hold
gevent greenlets. Past 90% of GUNICORN_WORKER_CONNECTIONS each new connection
closes the one that has waited longest for a request head, so a caller with a
request is served at once, not after the 5 s keep-alive of an idle one.
"""

from __future__ import annotations

import socket
import time

import requests

from helpers import API_KEY, DEMO_PHONE, WORKSPACE


def test_idle_connections_beyond_capacity_do_not_delay_a_lookup(gunicorn, demo):
    server = gunicorn(WEB_CONCURRENCY="1", GUNICORN_WORKER_CONNECTIONS="50", GUNICORN_KEEPALIVE="5")
    host, port = server.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(80)]  # connect, send nothing
    kept_alive = []
    for _ in range(20):  # one request each, then idle on a kept-alive connection
        session = requests.Session()
        session.get(server.url + "/healthz", timeout=10)
        kept_alive.append(session)
    try:
        params = {"phone": DEMO_PHONE, "workspace_id": WORKSPACE}
        for _ in range(10):
            started = time.monotonic()
            answer = requests.get(server.url + "/api/contacts/by-phone", params=params,
                                  headers={"x-api-key": API_KEY}, timeout=(2, 4))
            assert answer.status_code == 200
            # Not a timing figure: an answer that waited for an idle connection's keep-alive takes 5 s.
            assert time.monotonic() - started < 4
    finally:
        for sock in idle:
            sock.close()
        for session in kept_alive:
            session.close()
    assert "Traceback" not in server.log()
