"""gunicorn's gthread worker, answering requests it cannot parse with JSON.

gunicorn answers a malformed or oversized request itself, before Kontak
sees it, with an HTML page, and logs the raw request line (phones, keys).
This worker answers `{"error": …}` instead and logs only the error's class.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

_ANSWERS = [
    (errors.LimitRequestLine, 414, "URI Too Long", "URI too long"),
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "Request headers too large"),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented", "Not implemented"),
    (errors.ParseException, 400, "Bad Request", "Bad request"),
]


def _answer_for(exc: Exception) -> tuple[int, str, str]:
    for kind, status, reason, message in _ANSWERS:
        if isinstance(exc, kind):
            return status, reason, message
    return 500, "Internal Server Error", "Internal server error"


class JsonErrorWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc) -> None:  # noqa: ANN001 (gunicorn's signature)
        status, reason, message = _answer_for(exc)
        if status == 500:
            self.log.error("error handling request: %s", type(exc).__name__)
        else:
            self.log.warning("invalid request refused: %s", type(exc).__name__)
        body = json.dumps({"error": message}).encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            util.write_nonblock(client, head + body)
        except OSError:
            self.log.debug("could not send the error answer")
