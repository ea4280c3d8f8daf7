"""HTTP only: read the request, call a service, shape the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from services import timing
from services.api_keys import get_keyring, well_formed
from services.auth import EVERY_WORKSPACE, JUDGED_BY_CONVEX, check_api_key, check_scope, keys_match
from services.errors import BackendTimeout, BackendUnavailable, NotConfigured, Unauthorized
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
    given, expected = request.headers.get("x-api-key"), current_app.config["CRM_API_KEY"]
    if expected and given and keys_match(given, expected):
        g.key_scope = EVERY_WORKSPACE  # check_api_key's first answer, without fetching the key ring
        return
    g.key_scope = check_api_key(given, expected, get_keyring())


def require_api_key_for_convex() -> None:
    """The key check of the Convex route, which never waits on PostgreSQL (docs/contract.md §11, §13).

    Keys are judged from the key ring this process holds (refreshed in the background); a
    well-formed key it does not know goes on to Convex, which holds the same hashes (revocations
    included) and answers 401 for a wrong key or workspace. Only a process that never loaded its
    ring asks PostgreSQL first, and passes the key on if PostgreSQL cannot answer.
    """
    given, expected = request.headers.get("x-api-key"), current_app.config["CRM_API_KEY"]
    if expected and given and keys_match(given, expected):
        g.key_scope = EVERY_WORKSPACE
        return
    keyring = get_keyring()
    if not keyring.loaded:
        try:
            g.key_scope = check_api_key(given, expected, keyring)
        except (BackendUnavailable, BackendTimeout):
            g.key_scope = _judged_by_convex(given)
        return
    if not expected and not keyring.any_active(wait=False):
        raise NotConfigured()
    g.key_scope = keyring.known_workspace_of(given) or _judged_by_convex(given)


def _judged_by_convex(given: str | None) -> str:
    if not well_formed(given):
        raise Unauthorized()
    return JUDGED_BY_CONVEX


def protect(blueprint: Blueprint, backend: str) -> None:
    """Give `blueprint` its timing label and the key check: one hook doing what `label`
    and `require_api_key` do, in that order (the label first, so a 401 is labelled too)."""
    check_key = require_api_key_for_convex if backend == "convex" else require_api_key

    def label_and_check_key() -> None:
        record = timing.current()
        if record is not None:
            record.backend = backend
        check_key()

    blueprint.before_request(label_and_check_key)


def serve_lookup(find_context: Callable[[LookupQuery], dict[str, Any]]) -> Response:
    """The lookup route of docs/contract.md §3, whichever backend `find_context` asks."""
    query = read_lookup_query(request.args, current_app.config["DEFAULT_REGION"])
    check_scope(g.key_scope, query.workspace_id)
    record = timing.current()
    record.phone, record.bsuid = query.phone, query.bsuid
    context = find_context(query)
    record.found = context["found"]
    return jsonify(context)
