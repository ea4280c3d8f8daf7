"""GET /metrics: Kontak's Prometheus metrics (docs/contract.md §15), for CRM_API_KEY only.

Not under /api/: a scrape writes no timing line and is not counted in the request histogram. The
values are services/metrics.py's: every worker's under gunicorn (multiprocess mode), plus the
follower's backlog and lag read from PostgreSQL while capture is on.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client.exposition import choose_encoder
from werkzeug.exceptions import NotFound

from services import metrics
from services.auth import check_operator_key
from services.scrape import registry

bp = Blueprint("metrics", __name__)


@bp.record
def _configure(state: BlueprintSetupState) -> None:
    # Registering the route is what turns recording on or off for the process (METRICS).
    metrics.init_app(state.app)


@bp.get("/metrics")
def scrape() -> Response:
    if current_app.config["METRICS"] != "on":
        raise NotFound()  # as if the route did not exist: JSON 404, whatever the key
    check_operator_key(request.headers, current_app.config["CRM_API_KEY"])
    # Prometheus asks for OpenMetrics; curl gets the classic text format.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry()), content_type=content_type)  # no-store: hooks/security.py
