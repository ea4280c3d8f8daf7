"""The Convex backend, reached through its HTTP action (SPEC section 8).

One keep-alive `requests.Session` per process (opened after fork), bounded
by CONVEX_TIMEOUT; transport failures leave as the API errors of SPEC §3.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import requests
from flask import Flask, current_app
from requests.adapters import HTTPAdapter

from services import timing
from services.errors import BackendError, BackendTimeout, BackendUnavailable

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
        self._session: requests.Session | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        if self._session is None or self._pid != os.getpid():
            with self._lock:
                if self._session is None or self._pid != os.getpid():
                    session = requests.Session()
                    # One pool to one host, as many connections as threads use.
                    session.mount(self.site_url, HTTPAdapter(pool_connections=1, pool_maxsize=64, max_retries=0))
                    session.headers["x-api-key"] = self.api_key
                    self._session, self._pid = session, os.getpid()
        return self._session

    def _get(self, path: str, params: dict[str, str]) -> requests.Response:
        url = self.site_url + path
        for attempt in (1, 2):
            try:
                with timing.backend_call():
                    return self.session.get(url, params=params, timeout=self.timeout)
            except requests.Timeout as exc:
                if isinstance(exc, requests.ConnectTimeout):
                    raise BackendUnavailable() from None
                raise BackendTimeout() from None
            except requests.ConnectionError:
                # A keep-alive connection the server dropped: a lookup is a
                # read, so one retry on a fresh connection is safe.
                if attempt == 2:
                    raise BackendUnavailable() from None
        raise AssertionError("unreachable")

    def lookup_context(self, workspace_id: str, phone: str) -> dict[str, Any]:
        """The SPEC §3 answer from Convex, checked before it is passed on."""
        response = self._get(LOOKUP_PATH, {"phone": phone, "workspace_id": workspace_id})
        if response.status_code != 200:
            logger.error("convex answered HTTP %d", response.status_code)
            raise BackendError()
        try:
            body = response.json()
        except ValueError:
            body = None
        if not _valid_context(body):
            logger.error("convex answered an unexpected body")
            raise BackendError()
        return body

    def close(self) -> None:
        if self._session is not None and self._pid == os.getpid():
            self._session.close()
        self._session = None


def get_convex() -> ConvexClient:
    return current_app.extensions["kontak.convex"]


def init_app(app: Flask) -> None:
    app.extensions["kontak.convex"] = ConvexClient(app.config)


class ConvexAdmin:
    """The bulk import of the Convex deployment (off unless it sets KONTAK_ALLOW_IMPORT=true)."""

    IMPORT_PATH = "/http/import"
    CLEAR_PATH = "/http/import/clear"

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
