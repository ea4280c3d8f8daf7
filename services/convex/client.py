"""The Convex backend, reached through its HTTP action (docs/contract.md §8).

One keep-alive urllib3 connection pool per process (opened after fork);
a call, its one retry included, is bounded by CONVEX_TIMEOUT in total, and
guarded by Convex's own bulkhead and circuit breaker (services/breaker.py);
transport failures leave as the API errors of docs/contract.md §3. urllib3
directly, not a `requests.Session`: on the lookup path requests cost about
0.5 ms more per call (measured by make bench).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

import certifi
import urllib3
from flask import Flask, current_app
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from services import timing
from services.backend import Backend
from services.contract import limits
from services.deadline import Budget
from services.errors import BackendDown, BackendError, BackendTimeout, Unauthorized

logger = logging.getLogger("kontak")
LOOKUP_PATH = limits().convex_paths["lookup"]
_ANSWER_KEYS = ["found", "contact", "notes", "conversation_summary", "last_interaction"]


def _valid_context(body: Any) -> bool:
    if body == {"found": False, "context": None}:
        return True
    return isinstance(body, dict) and body.get("found") is True and list(body) == _ANSWER_KEYS


class ConvexClient(Backend):
    """Convex: one keep-alive urllib3 pool and a guard per process (services/backend.py)."""

    name = "convex"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings["CONVEX_MAX_CONCURRENCY"], settings["BREAKER_FAILURES"],
                         settings["BREAKER_PAUSE_SECONDS"])
        self.site_url = settings["CONVEX_SITE_URL"]
        self.timeout = settings["CONVEX_TIMEOUT"]
        self.api_key = settings["CRM_API_KEY"] or ""
        self._headers = {"x-api-key": self.api_key}
        self._prefix = (urllib3.util.parse_url(self.site_url).path or "").rstrip("/")

    def _open_pool(self) -> urllib3.HTTPConnectionPool:
        # One pool to one host, as many connections as threads use.
        options: dict[str, Any] = {"maxsize": 64, "retries": False}
        if urllib3.util.parse_url(self.site_url).scheme == "https":
            options["ca_certs"] = certifi.where()  # the CA bundle requests used
        return urllib3.connection_from_url(self.site_url, **options)

    def get_once(self, path: str, params: dict[str, str], timeout: float | None = None,
                 api_key: str | None = None) -> urllib3.BaseHTTPResponse:
        """One bare GET with the key, within `timeout` in total: no guard, no retry; urllib3's own errors
        (`HTTPError`) propagate. The readiness probe uses it as is."""
        pool = self.pool
        query = f"?{urlencode(params)}" if params else ""
        seconds = self.timeout if timeout is None else timeout
        # `total` bounds connect and read together; read alone would restart at every byte.
        limit = urllib3.Timeout(total=seconds, connect=seconds, read=seconds)
        # The caller's key when given (a workspace key is checked by Convex too), else Kontak's own.
        headers = self._headers if api_key is None else {"x-api-key": api_key}
        return pool.urlopen("GET", self._prefix + path + query, headers=headers, retries=False,
                            timeout=limit, redirect=False)

    def _guarded_get(self, path: str, params: dict[str, str], api_key: str | None = None) -> urllib3.BaseHTTPResponse:
        """A GET through Convex's bulkhead and breaker, within CONVEX_TIMEOUT (from when the guard lets
        it in), retried once on a dropped or refused connection."""
        with self.guarded():
            budget = Budget(self.timeout)
            for attempt in (1, 2):
                timing.count_round_trips(attempt)
                try:
                    return self.get_once(path, params, timeout=budget.remaining(), api_key=api_key)
                except ReadTimeoutError:
                    raise BackendTimeout() from None
                except ConnectTimeoutError as exc:
                    # No answer to the SYN: unreachable. Refused: once more, time permitting.
                    if not isinstance(exc, NewConnectionError) or attempt == 2 or budget.remaining() <= 0:
                        raise BackendDown() from None
                except HTTPError:
                    # A keep-alive connection the server dropped: a lookup is a read, so one
                    # retry on a fresh connection is safe, time permitting.
                    if attempt == 2 or budget.remaining() <= 0:
                        raise BackendDown() from None
        raise AssertionError("unreachable")

    def lookup_context(self, workspace_id: str, phone: str | None, api_key: str | None = None,
                       bsuid: str | None = None) -> dict[str, Any]:
        """The docs/contract.md §3 answer from Convex (BSUID first, then phone), checked before it is passed on."""
        params = {"workspace_id": workspace_id}
        params.update({"phone": phone} if phone is not None else {})
        params.update({"bsuid": bsuid} if bsuid is not None else {})
        response = self._guarded_get(LOOKUP_PATH, params, api_key)
        if response.status == 401 and api_key is not None and api_key != self.api_key:
            # Convex refused a workspace key Kontak accepted: revoked there a moment earlier
            # (each worker's key ring lags by up to 2 s), or never sent (run sync-convex).
            logger.warning("convex refused the caller's workspace key")
            raise Unauthorized()
        if response.status != 200:
            logger.error("convex answered HTTP %d", response.status)
            raise BackendError()
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if not _valid_context(body):
            logger.error("convex answered an unexpected body")
            raise BackendError()
        return body



def get_convex() -> ConvexClient:
    return current_app.extensions["kontak.convex"]


def init_app(app: Flask) -> None:
    app.extensions["kontak.convex"] = ConvexClient(app.config)
