"""Response headers that fit a JSON API holding people's data."""

from __future__ import annotations

from flask import Flask, Response

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # contact data must not sit in shared caches
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _add_headers(response: Response) -> Response:
    # Appended, not set: nothing else sets these, and a set scans every header.
    response.headers.extend(SECURITY_HEADERS)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_add_headers)
