"""The Convex deployment's bulk import and counts, for the commands (seed, sync-convex), tests and benchmarks.

Off the request path, so plain `requests` is enough; the lookups' client is services/convex/client.py.
"""

from __future__ import annotations

from typing import Any

import requests

from services.contract import limits
from services.errors import ApiError, BackendError, BackendUnavailable

_PATHS = limits().convex_paths


class ConvexRefused(ApiError):
    """Convex refused the call for good (a wrong key, the import not allowed, no such route):
    retrying changes nothing, so a command says so and stops."""

    status = 502


class EpochChanged(ApiError):
    """Convex holds another copy than the follower's (docs/contract.md §14): copy again."""

    status = 409


class ConvexAdmin:
    """The bulk import of the Convex deployment (off unless it sets KONTAK_ALLOW_IMPORT=true)."""

    IMPORT_PATH = _PATHS["import"]
    CLEAR_PATH = _PATHS["import_clear"]
    COUNTS_PATH = _PATHS["import_counts"]
    COUNTED_TABLES = ("contacts", "notes", "conversations", "messages")

    def __init__(self, site_url: str, api_key: str, timeout: float = 300) -> None:
        self.site_url, self.timeout = site_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def _post(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", path, payload or {})

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.session.request(method, self.site_url + path, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendUnavailable(f"Convex unreachable at {self.site_url}: {type(exc).__name__}") from None
        if response.status_code in (401, 403, 404):
            raise ConvexRefused(f"Convex answered {response.status_code} on {path}: {response.text[:200]}")
        if response.status_code == 409:
            raise EpochChanged(f"Convex holds another copy ({response.text[:200]})")
        if response.status_code != 200:
            raise BackendError(f"Convex answered {response.status_code} on {path}: {response.text[:200]}")
        return response.json()

    # -- following PostgreSQL (docs/contract.md §14) ---------------------------------------------

    def follow_state(self) -> dict[str, Any]:
        """`{"epoch": str | None, "backfilled": bool}`: which copy Convex holds."""
        return self._call("GET", _PATHS["follow_state"])

    def set_follow_state(self, epoch: str, backfilled: bool) -> None:
        self._post(_PATHS["follow_state"], {"epoch": epoch, "backfilled": backfilled})

    def follow_apply(self, change: dict[str, Any]) -> dict[str, Any]:
        """`{"applied", "stale", "refused"}`; EpochChanged when Convex holds another copy."""
        return self._post(_PATHS["follow_apply"], change)

    def follow_sweep(self, epoch: str) -> int:
        """Delete what the copy `epoch` did not write, in as many bounded requests as it takes."""
        deleted = 0
        while True:
            answer = self._post(_PATHS["follow_sweep"], {"epoch": epoch})
            deleted += answer["deleted"]
            if answer["done"]:
                return deleted

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

    def import_dataset(self, dataset: dict[str, Any]) -> dict[str, Any]:
        """The counts stored per table, and `refused`: the rows Convex could not take (only when any)."""
        return self._post(self.IMPORT_PATH, dataset)

    def clear(self) -> int:
        """Delete everything, in as many bounded requests as it takes."""
        deleted = 0
        while True:
            answer = self._post(self.CLEAR_PATH)
            deleted += answer["deleted"]
            if answer["done"]:
                return deleted
