"""What runs around every request: JSON error handlers, security headers, the timing line.

Each module exposes `init_app(app)`; `init_app` here installs all three, before the blueprints
are registered (security reads PROVIDE_AUTOMATIC_OPTIONS when routes are added).
"""

from __future__ import annotations

from flask import Flask

from hooks import errors, security, timing


def init_app(app: Flask) -> None:
    errors.init_app(app)
    security.init_app(app)
    timing.init_app(app)
