"""The Convex backend, reached through its HTTP action (SPEC section 8).

One keep-alive urllib3 connection pool per process (opened after fork);
a call, its one retry included, is bounded by CONVEX_TIMEOUT in total, and
guarded by Convex's own bulkhead and circuit breaker (services/breaker.py);
transport failures leave as the API errors of SPEC §3. urllib3 directly, not a `requests.Session`: on the lookup path
requests cost about 0.5 ms more per call (bench/results, issue 8).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from time import perf_counter
from typing import Any
from urllib.parse import urlencode

import certifi
import requests
import urllib3
from flask import Flask, current_app
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from services import timing
from services.breaker import BackendGuard
from services.deadline import Budget
from services.errors import BackendDown, BackendError, BackendTimeout, BackendUnavailable, Unauthorized

logger = logging.getLogger("kontak")
LOOKUP_PATH = "/http/contacts/getByPhone"
_CONTEXT_KEYS = ["found", "contact", "notes", "conversation_summary", "last_interaction"]


def _valid_context(body: Any) -> bool:
    if body == {"found": False, "context": None}:
        return True
    return isinstance(body, dict) and body.get("found") is True and list(body) == _CONTEXT_KEYS


class ConvexClient:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.site_url = settings["CONVEX_SITE_URL"]
        self.timeout = settings["CONVEX_TIMEOUT"]
        self.api_key = settings["CRM_API_KEY"] or ""
        self._headers = {"x-api-key": self.api_key}
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._prefix = ""
        self._pid = 0
        self._lock = threading.Lock()
        self._guard_settings = (settings["CONVEX_MAX_CONCURRENCY"], settings["BREAKER_FAILURES"],
                                settings["BREAKER_PAUSE_SECONDS"])
        self._guard: BackendGuard | None = None

    @property
    def guard(self) -> BackendGuard:
        self.pool  # noqa: B018 - opens the pool and the guard in this process
        assert self._guard is not None
        return self._guard

    @property
    def pool(self) -> urllib3.HTTPConnectionPool:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    url = urllib3.util.parse_url(self.site_url)
                    # One pool to one host, as many connections as threads use.
                    options: dict[str, Any] = {"maxsize": 64, "retries": False}
                    if url.scheme == "https":
                        options["ca_certs"] = certifi.where()  # the CA bundle requests used
                    self._pool = urllib3.connection_from_url(self.site_url, **options)
                    self._prefix = (url.path or "").rstrip("/")
                    self._guard = BackendGuard("convex", *self._guard_settings)
                    self._pid = os.getpid()
        return self._pool

    def get(self, path: str, params: dict[str, str], timeout: float | None = None,
            api_key: str | None = None) -> urllib3.BaseHTTPResponse:
        """One GET with the key, within `timeout` in total; urllib3's own errors (`HTTPError`) propagate."""
        pool = self.pool
        query = f"?{urlencode(params)}" if params else ""
        seconds = self.timeout if timeout is None else timeout
        # `total` bounds connect and read together; read alone would restart at every byte.
        limit = urllib3.Timeout(total=seconds, connect=seconds, read=seconds)
        # The caller's key when given (a workspace key is checked by Convex too), else Kontak's own.
        headers = self._headers if api_key is None else {"x-api-key": api_key}
        return pool.urlopen("GET", self._prefix + path + query, headers=headers, retries=False,
                            timeout=limit, redirect=False)

    def _get(self, path: str, params: dict[str, str], api_key: str | None = None) -> urllib3.BaseHTTPResponse:
        guard = self.guard  # guard.call() without the generator layer: enter, then exactly one leave
        probe = guard.enter()
        try:
            response = self._get_within(path, params, Budget(self.timeout), api_key)
        except BaseException as error:
            guard.leave(probe, error)
            raise
        guard.leave(probe, None)
        return response

    def _get_within(self, path: str, params: dict[str, str], budget: Budget,
                    api_key: str | None = None) -> urllib3.BaseHTTPResponse:
        for attempt in (1, 2):
            started = perf_counter()  # timing.backend_call's work, without the context manager
            try:
                return self.get(path, params, timeout=budget.remaining(), api_key=api_key)
            except ConnectTimeoutError as exc:
                if not isinstance(exc, NewConnectionError):  # no answer to the SYN: unreachable
                    raise BackendDown() from None
                if attempt == 2 or budget.remaining() <= 0:  # refused or unreachable, twice
                    raise BackendDown() from None
            except ReadTimeoutError:
                raise BackendTimeout() from None
            except HTTPError:
                # A keep-alive connection the server dropped: a lookup is a
                # read, so one retry on a fresh connection is safe, time permitting.
                if attempt == 2 or budget.remaining() <= 0:
                    raise BackendDown() from None
            finally:
                timing.add_backend_time(perf_counter() - started)
        raise AssertionError("unreachable")

    def lookup_context(self, workspace_id: str, phone: str, api_key: str | None = None) -> dict[str, Any]:
        """The SPEC §3 answer from Convex, checked before it is passed on."""
        response = self._get(LOOKUP_PATH, {"phone": phone, "workspace_id": workspace_id}, api_key)
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

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


def get_convex() -> ConvexClient:
    return current_app.extensions["kontak.convex"]


def init_app(app: Flask) -> None:
    app.extensions["kontak.convex"] = ConvexClient(app.config)


class ConvexAdmin:
    """The bulk import of the Convex deployment (off unless it sets KONTAK_ALLOW_IMPORT=true)."""

    IMPORT_PATH = "/http/import"
    CLEAR_PATH = "/http/import/clear"
    COUNTS_PATH = "/http/import/counts"
    COUNTED_TABLES = ("contacts", "notes", "conversations", "messages")

    def __init__(self, site_url: str, api_key: str, timeout: float = 300) -> None:
        self.site_url, self.timeout = site_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def _post(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.session.post(self.site_url + path, json=payload or {}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendUnavailable(f"Convex unreachable at {self.site_url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise BackendError(f"Convex import answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def counts(self, workspace_id: str) -> dict[str, int] | None:
        """One workspace's documents per table, or None when the deployment has no count endpoint (404)."""
        try:
            response = self.session.get(self.site_url + self.COUNTS_PATH, params={"workspace_id": workspace_id},
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendUnavailable(f"Convex unreachable at {self.site_url}: {type(exc).__name__}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise BackendError(f"Convex counts answered {response.status_code}: {response.text[:200]}")
        body = response.json()
        if not isinstance(body, dict) or any(not isinstance(body.get(t), int) for t in self.COUNTED_TABLES):
            raise BackendError(f"Convex counts answered an unexpected body: {response.text[:200]}")
        return {table: body[table] for table in self.COUNTED_TABLES}

    def import_dataset(self, dataset: dict[str, Any]) -> dict[str, int]:
        return self._post(self.IMPORT_PATH, dataset)

    def clear(self) -> int:
        """Delete everything, in as many bounded requests as it takes."""
        deleted = 0
        while True:
            answer = self._post(self.CLEAR_PATH)
            deleted += answer["deleted"]
            if answer["done"]:
                return deleted
