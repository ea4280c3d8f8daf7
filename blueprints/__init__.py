"""HTTP only: read the request, call a service, shape the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from services import shadow, timing
from services.api_keys import get_keyring
from services.auth import check_api_key, check_api_key_for_convex, check_scope
from services.lookup import LookupQuery, read_lookup_query


def label(blueprint: Blueprint, backend: str) -> None:
    """Name the backend in the timing lines of `blueprint`'s requests."""

    def set_backend() -> None:
        record = timing.current()
        if record is not None:
            record.backend = backend

    blueprint.before_request(set_backend)


def require_api_key() -> None:
    """The one key check every lookup blueprint shares (docs/contract.md §3, §13).

    A workspace key passes here whatever workspace it asks for: the key comes
    before the parameters, and its workspace is compared with the validated
    `workspace_id` in `serve_lookup`.
    """
    g.key_scope = check_api_key(request.headers.get("x-api-key"), current_app.config["CRM_API_KEY"],
                                get_keyring())


def require_api_key_for_convex() -> None:
    """The key check of the Convex route: the same checks, never waiting on PostgreSQL."""
    g.key_scope = check_api_key_for_convex(request.headers.get("x-api-key"), current_app.config["CRM_API_KEY"],
                                           get_keyring())


def protect(blueprint: Blueprint, backend: str) -> None:
    """Give `blueprint` its timing label and its key check, the label first (a 401 is labelled too).
    The Convex route's check never waits on PostgreSQL."""
    label(blueprint, backend)
    blueprint.before_request(require_api_key_for_convex if backend == "convex" else require_api_key)


def serve_lookup(find_context: Callable[[LookupQuery], dict[str, Any]]) -> Response:
    """The lookup route of docs/contract.md §3, whichever backend `find_context` asks."""
    query = read_lookup_query(request.args, current_app.config["DEFAULT_REGION"])
    check_scope(g.key_scope, query.workspace_id)
    record = timing.current()
    record.phone, record.bsuid = query.phone, query.bsuid
    context = find_context(query)
    record.found = context["found"]
    response = jsonify(context)
    shadow.after_lookup(response, query, record)  # docs/contract.md §15: after the answer is sent, if sampled
    return response
