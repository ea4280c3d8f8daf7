"""GET /api/contacts/by-phone: the lookup on PostgreSQL (named supabase by the contract: services/postgres/)."""

from __future__ import annotations

from flask import Blueprint, Response

from blueprints import protect, serve_lookup
from services.lookup import find_context

bp = Blueprint("supabase_contacts", __name__)
protect(bp, backend="supabase")


@bp.get("/api/contacts/by-phone")
def by_phone() -> Response:
    return serve_lookup(lambda query: find_context("supabase", query))
