"""Response headers that fit a JSON API holding people's data."""

from __future__ import annotations

from flask import Flask, Response

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # contact data must not sit in shared caches
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


_ITEMS = tuple(SECURITY_HEADERS.items())
_POLICY = "Content-Security-Policy"


def _add_headers(response: Response) -> Response:
    # Appended, not set: one add each. A page that brings its own policy (/verdict's inline style)
    # keeps it: two policies would both apply, the stricter blocking the page.
    add, own_policy = response.headers.add, _POLICY in response.headers
    for name, value in _ITEMS:
        if not (own_policy and name == _POLICY):
            add(name, value)
    return response


def init_app(app: Flask) -> None:
    # No automatic OPTIONS answers (Flask's are an empty text/html 200): OPTIONS gets the
    # JSON 405 with `Allow` like any other method a route does not serve. Read when routes
    # are added, so this runs before the blueprints are registered.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.after_request(_add_headers)
