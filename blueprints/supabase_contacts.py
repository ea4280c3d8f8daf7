"""GET /api/contacts/by-phone: the lookup on PostgreSQL (named supabase by the contract: services/postgres/)."""

from __future__ import annotations

from flask import Blueprint, Response

from blueprints import protect, serve_lookup
from services.lookup_answer import build_context
from services.postgres.pool import get_db
from services.postgres.store import lookup_contact

bp = Blueprint("supabase_contacts", __name__)
protect(bp, backend="supabase")


@bp.get("/api/contacts/by-phone")
def by_phone() -> Response:
    return serve_lookup(
        lambda query: build_context(lookup_contact(get_db(), query.workspace_id, query.phone, query.bsuid)))
