"""GET /healthz (liveness) and GET /readyz (readiness): no key, nothing configured leaks."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from services.convex.client import get_convex
from services.postgres.pool import get_db
from services.readiness import check_all, convex_state, postgres_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Both backends checked side by side within one second, and the circuit breakers of the
    worker process that answers (closed, open or half-open)."""
    db, convex = get_db(), get_convex()
    checks = check_all({"postgres": lambda: postgres_state(db), "convex": lambda: convex_state(convex)})
    ready = all(state == "ok" for state in checks.values())
    breakers = {"postgres": db.guard.breaker.state, "convex": convex.guard.breaker.state}
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "breakers": breakers}
    return jsonify(body), 200 if ready else 503
