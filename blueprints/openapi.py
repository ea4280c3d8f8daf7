"""GET /openapi.json: the published contract, served from the committed file."""

from __future__ import annotations

from flask import Blueprint, Response

from services.config import PROJECT_ROOT

OPENAPI_FILE = PROJECT_ROOT / "contract" / "openapi.json"
bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(OPENAPI_FILE.read_bytes(), mimetype="application/json")
