"""GET /api/contacts/by-phone: the lookup on PostgreSQL (Supabase)."""

from __future__ import annotations

from flask import Blueprint, Response

from blueprints import protect, serve_lookup
from services.context import build_context
from services.pg_store import lookup_contact
from services.postgres import get_db

bp = Blueprint("supabase_contacts", __name__)
protect(bp, backend="supabase")


@bp.get("/api/contacts/by-phone")
def by_phone() -> Response:
    return serve_lookup(lambda query: build_context(lookup_contact(get_db(), query.workspace_id, query.phone)))
