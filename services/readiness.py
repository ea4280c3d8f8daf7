"""Readiness of the two backends, each checked within a short bound."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout
from urllib3.exceptions import HTTPError

from services.convex_client import LOOKUP_PATH, ConvexClient
from services.postgres import Database

CHECK_TIMEOUT = 1.0


def postgres_state(db: Database) -> str:
    """PostgreSQL as /readyz reports it: ok, unavailable, or "schema behind" (lookups answer 503)."""
    try:
        with db.pool.connection(timeout=CHECK_TIMEOUT) as conn:
            behind = db.schema_pending(conn)
    except (PoolTimeout, psycopg.Error):
        return "unavailable"
    return "schema behind" if behind else "ok"


def postgres_ready(db: Database) -> bool:
    return postgres_state(db) == "ok"


def convex_ready(convex: ConvexClient) -> bool:
    """The HTTP action answers, and accepts our key: 400 "Missing parameters" says both."""
    try:
        response = convex.get(LOOKUP_PATH, {}, timeout=min(CHECK_TIMEOUT, convex.timeout))
    except HTTPError:
        return False
    return response.status == 400
