"""Errors that map to the JSON answers of docs/contract.md §3."""

from __future__ import annotations


class ApiError(Exception):
    """An error the caller sees as `{"error": message}` with `status`."""

    status = 400
    message = "Bad request"
    headers: dict[str, str] = {}

    def __init__(self, message: str | None = None, status: int | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.headers = {**self.headers, "Retry-After": str(retry_after)}


class NotConfigured(ApiError):
    status, message = 500, "Service not configured"


class Unauthorized(ApiError):
    status, message = 401, "Unauthorized"


class BackendError(ApiError):
    """The backend answered something Kontak did not expect."""

    status, message = 502, "Backend error"


class BackendUnavailable(ApiError):
    """The backend cannot be reached (or the pool is exhausted): retry soon."""

    status, message = 503, "Backend unavailable"
    headers = {"Retry-After": "1"}


class BackendDown(BackendUnavailable):
    """The backend failed to serve a call (refused, unreachable, connection dropped, no pooled
    connection within the pool timeout): one failure for its circuit breaker. A full
    bulkhead is this process's own bound, answered at once, and not this."""


class ConnectionLost(BackendDown):
    """A connection broke under a statement (e.g. the database restarted)."""


class BackendTimeout(ApiError):
    """The backend did not answer in time (also one failure for its circuit breaker)."""

    status, message = 504, "Backend timeout"
    headers = {"Retry-After": "1"}
