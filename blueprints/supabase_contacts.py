"""GET /api/contacts/by-phone: the lookup on PostgreSQL (Supabase)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from blueprints import protect
from services import timing
from services.context import build_context
from services.lookup import read_lookup_query
from services.pg_store import lookup_contact
from services.postgres import get_db

bp = Blueprint("supabase_contacts", __name__)
protect(bp, backend="supabase")


@bp.get("/api/contacts/by-phone")
def by_phone() -> Response:
    query = read_lookup_query(request.args, current_app.config["DEFAULT_REGION"])
    record = timing.current()
    record.phone = query.phone
    context = build_context(lookup_contact(get_db(), query.workspace_id, query.phone))
    record.found = context["found"]
    return jsonify(context)
