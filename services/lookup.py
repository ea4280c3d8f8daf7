"""The lookup request of docs/contract.md §3, read the same way by both backends."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.errors import ApiError
from services.phones import InvalidPhone, normalize_phone

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class LookupQuery:
    workspace_id: str  # lower-case canonical UUID
    phone: str  # E.164


def read_lookup_query(args: Mapping[str, str], default_region: str) -> LookupQuery:
    """Check presence first, then validity, phone before workspace_id."""
    phone, workspace_id = args.get("phone", ""), args.get("workspace_id", "")
    if not phone.strip():
        raise ApiError("Missing phone parameter")
    if not workspace_id.strip():
        raise ApiError("Missing workspace_id parameter")
    try:
        e164 = normalize_phone(phone, default_region)
    except InvalidPhone:
        raise ApiError("Invalid phone number") from None
    workspace_id = workspace_id.strip()
    if not _UUID.fullmatch(workspace_id):
        raise ApiError("Invalid workspace_id")
    return LookupQuery(workspace_id=workspace_id.lower(), phone=e164)
