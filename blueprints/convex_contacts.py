"""GET /api/contacts/by-phone-convex: the same lookup on Convex."""

from __future__ import annotations

from flask import Blueprint, Response, request

from blueprints import protect, serve_lookup
from services.lookup import find_context

bp = Blueprint("convex_contacts", __name__)
protect(bp, backend="convex")


@bp.get("/api/contacts/by-phone-convex")
def by_phone_convex() -> Response:
    key = request.headers.get("x-api-key")
    return serve_lookup(lambda query: find_context("convex", query, api_key=key))
