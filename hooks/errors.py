"""Every error leaves as JSON (docs/contract.md §3): never HTML, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from services.errors import ApiError

logger = logging.getLogger("kontak")

_HTTP_MESSAGES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    415: "Unsupported media type",
}


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(error: ApiError) -> Response:
    return _json_error(error.status, error.message, error.headers)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    response = _json_error(status, _HTTP_MESSAGES.get(status, error.name))
    if status == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _unexpected(error: Exception) -> Response:
    logger.exception("unhandled error: %s", type(error).__name__)
    return _json_error(500, "Internal server error")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
