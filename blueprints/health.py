"""GET /healthz (liveness) and GET /readyz (readiness): no key, nothing configured leaks."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from services.convex_client import get_convex
from services.postgres import get_db
from services.readiness import convex_ready, postgres_ready

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks = {"postgres": "ok" if postgres_ready(get_db()) else "unavailable",
              "convex": "ok" if convex_ready(get_convex()) else "unavailable"}
    ready = all(state == "ok" for state in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503
