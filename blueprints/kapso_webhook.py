"""POST /api/webhook/kapso: Kapso deliveries stored in PostgreSQL (docs/webhook.md)."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints import label
from services.api_keys import get_keyring
from services.auth import check_webhook_auth
from services.contract import rules
from services.errors import ApiError, BackendTimeout, BackendUnavailable
from services.kapso import BodyNotObject, TooManyEvents, parse_delivery
from services.postgres.ingest import ingest_events
from services.postgres.pool import get_db
from services.webhook_json import InvalidJson, read_json_body

logger = logging.getLogger("kontak")
bp = Blueprint("kapso_webhook", __name__)
label(bp, backend="supabase")
_MAX_CHALLENGE = rules().max_challenge_length  # contract/webhook_rules.json
_MAX_EVENTS = rules().max_events_per_delivery


def _read_body() -> bytes:
    """The whole body, or 413 as soon as it is longer than the cap, chunked or not (docs/contract.md §11).

    With a Content-Length, Werkzeug refuses a longer body before reading it. A chunked body has
    none, and Werkzeug would stop reading at the cap without saying so: the delivery would be
    judged (and its signature checked) on bytes cut short. Malformed chunk framing is the
    client's error (400), and its bytes never reach a log.
    """
    if request.content_length is not None:
        return request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        body = request.environ["wsgi.input"].read(limit + 1)
    except (ParseException, OSError):
        logger.warning("webhook body unreadable: malformed chunked framing or a dropped connection")
        raise ApiError("Bad request") from None
    if len(body) > limit:
        _drain(request.environ["wsgi.input"])
        raise RequestEntityTooLarge()
    return body


def _drain(stream, most: int = 32 * 1024 * 1024, seconds: float = 2.0) -> None:
    """Read and drop what is left of a refused body (within bounds), so the client gets to read
    the 413 instead of a connection reset for the bytes it was still sending."""
    deadline = time.monotonic() + seconds
    try:
        while most > 0 and time.monotonic() < deadline and (chunk := stream.read(min(65536, most))):
            most -= len(chunk)
    except (ParseException, OSError):
        pass  # the 413 stands; the connection closes after it


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
    body = _read_body()
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
