"""The lookup request of docs/contract.md §3, read the same way by both backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.convex.client import get_convex
from services.errors import ApiError
from services.identity import is_uuid, is_valid_bsuid
from services.lookup_answer import build_context
from services.phones import InvalidPhone, normalize_phone
from services.postgres.pool import get_db
from services.postgres.store import lookup_contact


@dataclass(frozen=True)
class LookupQuery:
    workspace_id: str  # lower-case canonical UUID
    phone: str | None  # E.164
    bsuid: str | None  # looked up first (docs/contract.md §4a)


def read_lookup_query(args: Mapping[str, str], default_region: str) -> LookupQuery:
    """Presence first, then validity: bsuid, phone, workspace_id (docs/contract.md §3)."""
    phone, bsuid = args.get("phone", "").strip(), args.get("bsuid", "").strip()
    workspace_id = args.get("workspace_id", "").strip()
    if not phone and not bsuid:
        raise ApiError("Missing phone parameter")
    if not workspace_id:
        raise ApiError("Missing workspace_id parameter")
    if bsuid and not is_valid_bsuid(bsuid):
        raise ApiError("Invalid bsuid")
    e164 = None
    if phone:
        try:
            e164 = normalize_phone(args["phone"], default_region)
        except InvalidPhone:
            raise ApiError("Invalid phone number") from None
    if not is_uuid(workspace_id):
        raise ApiError("Invalid workspace_id")
    return LookupQuery(workspace_id=workspace_id.lower(), phone=e164, bsuid=bsuid or None)


def find_context(backend: str, query: LookupQuery, api_key: str | None = None) -> dict[str, Any]:
    """The answer of docs/contract.md §3 from `backend` ("supabase" or "convex"): what its route
    answers, and what a shadow lookup (services/shadow.py) asks of it. Convex gets the caller's own
    key: it checks a workspace key against its copy of the hashes too."""
    if backend == "supabase":
        return build_context(lookup_contact(get_db(), query.workspace_id, query.phone, query.bsuid))
    return get_convex().lookup_context(query.workspace_id, query.phone, api_key=api_key, bsuid=query.bsuid)
