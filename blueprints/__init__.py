"""HTTP only: read the request, call a service, shape the answer."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from services import timing
from services.auth import check_api_key


def protect(blueprint: Blueprint, backend: str) -> None:
    """Give `blueprint` the shared key check and label its timing lines."""

    def require_api_key() -> None:
        record = timing.current()
        if record is not None:
            record.backend = backend
        check_api_key(request.headers.get("x-api-key"), current_app.config["CRM_API_KEY"])

    blueprint.before_request(require_api_key)
