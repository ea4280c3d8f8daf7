"""POST /api/webhook/kapso: Kapso deliveries stored in PostgreSQL (docs/webhook.md)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from blueprints import label
from services.api_keys import get_keyring
from services.auth import check_webhook_auth
from services.contract import rules
from services.errors import ApiError, BackendTimeout, BackendUnavailable
from services.kapso import BodyNotObject, TooManyEvents, parse_delivery
from services.postgres.ingest import ingest_events
from services.postgres.pool import get_db
from services.webhook_json import InvalidJson, read_json_body

bp = Blueprint("kapso_webhook", __name__)
label(bp, backend="supabase")
_MAX_CHALLENGE = rules().max_challenge_length  # contract/webhook_rules.json
_MAX_EVENTS = rules().max_events_per_delivery


def _signature(headers) -> str | None:
    """Kapso's header, its legacy name, or Meta's on a forwarded Meta delivery (docs/webhook.md §1)."""
    return (headers.get("X-Webhook-Signature") or headers.get("X-Kapso-Signature")
            or headers.get("X-Hub-Signature-256"))


@bp.get("/api/webhook/kapso")
def verify_subscription() -> Response:
    challenge = request.args.get("hub.challenge", "") or request.args.get("challenge", "")
    if not challenge or len(challenge) > _MAX_CHALLENGE:
        raise ApiError("Missing hub.challenge parameter")
    return Response(challenge, mimetype="text/plain")


@bp.post("/api/webhook/kapso")
def receive() -> Response:
    body = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413
    headers = request.headers
    # A delivery authenticated by a workspace key stores only that workspace's events (docs/contract.md §13).
    allowed_workspace = check_webhook_auth(
        body, _signature(headers), headers.get("x-api-key"),
        current_app.config["KAPSO_WEBHOOK_SECRET"], current_app.config["CRM_API_KEY"], get_keyring())
    try:
        payload = read_json_body(body)
    except InvalidJson:
        raise ApiError("Invalid JSON") from None
    try:
        events = parse_delivery(payload, headers.get("X-Webhook-Event"), headers.get("X-Webhook-Batch"))
    except BodyNotObject:
        raise ApiError("Body must be a JSON object") from None
    except TooManyEvents:
        raise ApiError(f"Too many events (at most {_MAX_EVENTS} per delivery)", status=413) from None
    try:
        result = ingest_events(get_db(), events, current_app.config["DEFAULT_REGION"], allowed_workspace)
    except BackendTimeout:
        # Kapso retries a 503 after its Retry-After; a timed-out write committed nothing.
        raise BackendUnavailable() from None
    return jsonify(result.as_answer())
