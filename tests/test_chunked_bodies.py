"""Chunked bodies are held to the 1 MiB cap like any other, through the real gunicorn (docs/contract.md §11).

A chunked request carries no Content-Length, so the cap must be found while
reading: over it, 413 before any work (never a delivery judged on bytes cut
short, nor a signature checked against them); malformed framing, a JSON 400
with nothing of the raw bytes in any log.
"""

from __future__ import annotations

import json
import socket

from helpers import API_KEY, LIVE_SECRET, sign
from services.contract import limits


def chunked_post(url: str, body: bytes, headers: dict[str, str], chunk: int = 65536, framing: bytes | None = None):
    """POST `body` chunked over a raw socket (or `framing` as the body bytes, as given); (status, body)."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if framing is None:
        framing = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                           for i in range(0, len(body), chunk)) + b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /api/webhook/kapso HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     f"Connection: close\r\n{head}\r\n".encode())
        try:
            sock.sendall(framing)
        except OSError:
            pass  # the server answered (and closed) before reading it all
        answer = b""
        while data := sock.recv(65536):
            answer += data
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def delivery(padding: int) -> bytes:
    return json.dumps({"message": {"id": "wamid.chunked", "timestamp": "1767000000", "type": "text",
                                   "text": {"body": "halo"}},
                       "conversation": {"phone_number": "+6281234567890", "phone_number_id": "nowhere"},
                       "padding": "x" * padding}).encode()


def test_chunked_bodies_over_the_cap_are_413_and_malformed_framing_is_a_json_400(gunicorn, logs_hold_no_secrets):
    server = gunicorn(KAPSO_WEBHOOK_SECRET=LIVE_SECRET)
    cap = limits().max_body_bytes
    small = delivery(500_000)
    status, body = chunked_post(server.url, small, {"x-api-key": API_KEY})
    assert (status, json.loads(body)) == (200, {"received": True, "stored": 0, "duplicates": 0, "ignored": 1})
    for big in (delivery(cap - 100), delivery(4 * cap)):
        for auth in ({"x-api-key": API_KEY}, {"X-Webhook-Signature": sign(big, LIVE_SECRET)}):
            status, body = chunked_post(server.url, big, auth)
            assert (status, json.loads(body)) == (413, {"error": "Payload too large"})
    status, body = chunked_post(server.url, b"", {"x-api-key": API_KEY},
                                framing=b"zz\r\n{\"phone\": \"+6281234567890\"}\r\n0\r\n\r\n")
    assert (status, json.loads(body)) == (400, {"error": "Bad request"})
    server.stop()
    log = logs_hold_no_secrets()
    assert "Traceback" not in log and "6281234567890" not in log
