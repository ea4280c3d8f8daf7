"""GET /api/contacts/by-phone-convex: the same lookup on Convex."""

from __future__ import annotations

from flask import Blueprint, Response, request

from blueprints import protect, serve_lookup
from services.convex.client import get_convex

bp = Blueprint("convex_contacts", __name__)
protect(bp, backend="convex")


@bp.get("/api/contacts/by-phone-convex")
def by_phone_convex() -> Response:
    # The caller's own key goes on: Convex checks a workspace key against its copy of the hashes too.
    key = request.headers.get("x-api-key")
    return serve_lookup(lambda query: get_convex().lookup_context(query.workspace_id, query.phone, api_key=key,
                                                                  bsuid=query.bsuid))
