"""gunicorn's gevent worker, answering requests it cannot parse with JSON.

Why gevent: each connection is a greenlet, so hundreds of clients that send a
request head or body slowly, or nothing at all, cost a little memory and no
thread; a backend that hangs holds only the greenlets of the requests waiting
on it (and its bulkhead bounds those). gunicorn monkey-patches the worker in
`init_process` before it loads the app, so psycopg (which picks its gevent
wait function when first imported), psycopg_pool and urllib3 are imported,
and their pools created, only after the patching.

gunicorn answers a malformed or oversized request itself, before Kontak
sees it, with an HTML page, and logs the raw request line (phones, keys).
This worker answers `{"error": …}` instead and logs only the error's class.
"""

from __future__ import annotations

import json
import socket

import gevent
from gunicorn.http import errors
from gunicorn.workers.ggevent import GeventWorker

from services.config import load_server_settings

_ANSWERS = [
    (errors.LimitRequestLine, 414, "URI Too Long", "URI too long"),
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "Request headers too large"),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented", "Not implemented"),
    (errors.ParseException, 400, "Bad Request", "Bad request"),
]
# After an error answer, what is left of the request is read and dropped for this long
# (and up to this much), so closing does not reset the connection before the client has
# read the answer; beyond either bound the connection is simply closed.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 32 * 1024 * 1024


def _answer_for(exc: BaseException) -> tuple[int, str, str]:
    for kind, status, reason, message in _ANSWERS:
        if isinstance(exc, kind):
            return status, reason, message
    return 500, "Internal Server Error", "Internal server error"


def _linger(client: socket.socket) -> None:
    try:
        client.shutdown(socket.SHUT_WR)
        drained = 0
        with gevent.Timeout(_LINGER_SECONDS, False):
            while drained < _LINGER_BYTES and (chunk := client.recv(65536)):
                drained += len(chunk)
    except OSError:
        pass


# Past this share of GUNICORN_WORKER_CONNECTIONS, each new connection closes the connection that
# has waited longest for a request head: idle keep-alive or slow clients never fill the worker, so a
# caller with a request is accepted at once instead of waiting for an idle one to time out.
_EVICT_ABOVE = 0.9


class _WaitingForHead:
    """gunicorn's wait for the next request head, with the connection marked idle meanwhile."""

    def __init__(self, worker: JsonErrorGeventWorker, timeout: gevent.Timeout) -> None:
        self.worker, self.timeout, self.me = worker, timeout, gevent.getcurrent()

    def __enter__(self) -> None:
        client = self.worker.clients.get(self.me)
        if client is not None:
            self.worker.idle[self.me] = client
        self.timeout.__enter__()

    def __exit__(self, *exc: object) -> bool | None:
        self.worker.idle.pop(self.me, None)
        return self.timeout.__exit__(*exc)


class JsonErrorGeventWorker(GeventWorker):
    def init_process(self) -> None:
        self.client_timeout = load_server_settings()["GUNICORN_CLIENT_TIMEOUT"]
        self.clients: dict[gevent.Greenlet, socket.socket] = {}  # every open connection, by its greenlet
        self.idle: dict[gevent.Greenlet, socket.socket] = {}  # those waiting for a request head, oldest first
        super().init_process()

    def timeout_ctx(self) -> _WaitingForHead:  # gunicorn's wait for a request head on a kept-alive connection
        return _WaitingForHead(self, super().timeout_ctx())

    def handle(self, listener, client, addr) -> None:  # gunicorn's signature
        # gunicorn's gevent worker bounds the wait for a request head (keepalive), not a body
        # or a client that stops reading: a peer that vanished must not keep its greenlet forever.
        client.settimeout(self.client_timeout)
        me = gevent.getcurrent()
        if len(self.clients) >= self.worker_connections * _EVICT_ABOVE:
            self._close_longest_idle()
        self.clients[me] = client
        try:
            super(GeventWorker, self).handle(listener, client, addr)
        finally:
            self.clients.pop(me, None)
            self.idle.pop(me, None)

    def _close_longest_idle(self) -> None:
        for greenlet in self.idle:
            self.idle.pop(greenlet)
            # GreenletExit ends its wait for a head; gunicorn's own `finally` closes the socket.
            greenlet.kill(block=False)
            return

    def handle_error(self, req, client, addr, exc) -> None:  # gunicorn's signature
        status, reason, message = _answer_for(exc)
        if status == 500:
            self.log.error("error handling request: %s", type(exc).__name__)
        else:
            self.log.warning("invalid request refused: %s", type(exc).__name__)
        body = json.dumps({"error": message}).encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            client.sendall(head + body)
        except OSError:
            self.log.debug("could not send the error answer")
            return
        _linger(client)
