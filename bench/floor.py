"""The floors `make bench` measures Kontak against: bare Flask apps doing the same backend work.

- `GET /floor/by-phone?phone=<E.164>&workspace_id=…`: the lookup SQL of
  services/postgres/store.py through the same kind of pool (psycopg_pool, the same
  sizes, autocommit, prepared statements), the row returned as JSON;
- `GET /floor/by-phone-convex?…`: the same Convex HTTP action call through a
  urllib3 keep-alive pool, the body passed through.

No validation, key check, timing line, deadline, bulkhead or breaker: what
is left is Flask, the driver and the backend, served by the same gunicorn
configuration (`GunicornServer(app="bench.floor:create_app()")`). The
ratios Kontak ÷ floor are then what Kontak's own work costs.
"""

from __future__ import annotations

import os
from datetime import datetime

import urllib3
from flask import Flask, Response, jsonify, request
from psycopg_pool import ConnectionPool

from services.convex.client import LOOKUP_PATH
from services.postgres.store import LOOKUP_SQL


def create_app() -> Flask:
    app = Flask(__name__)
    state: dict[str, object] = {}

    def pool() -> ConnectionPool:
        if "pool" not in state:  # per process, after gunicorn's fork and gevent's patching
            state["pool"] = ConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=4, timeout=2,
                                           kwargs={"autocommit": True, "prepare_threshold": 0}, open=True)
        return state["pool"]

    def convex() -> urllib3.HTTPConnectionPool:
        if "convex" not in state:
            state["convex"] = urllib3.connection_from_url(os.environ["CONVEX_SITE_URL"], maxsize=64, retries=False)
        return state["convex"]

    @app.get("/floor/by-phone")
    def by_phone() -> Response:
        with pool().connection() as conn:
            row = conn.execute(LOOKUP_SQL, {"workspace_id": request.args["workspace_id"],
                                            "phone": request.args["phone"], "bsuid": None}).fetchone()
        if row is None:
            return jsonify({"found": False, "context": None})
        return jsonify({"found": True, "row": [v.isoformat() if isinstance(v, datetime) else v for v in row]})

    @app.get("/floor/by-phone-convex")
    def by_phone_convex() -> Response:
        answer = convex().urlopen("GET", f"{LOOKUP_PATH}?{request.query_string.decode()}",
                                  headers={"x-api-key": os.environ["CRM_API_KEY"]}, timeout=2.0)
        return Response(answer.data, status=answer.status, mimetype="application/json")

    return app
