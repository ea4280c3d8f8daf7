"""The Flask CLI (`flask --app app <command>`) and the code only the commands use.

Commands: seed.py, compare.py, log_summary.py, db.py, sync_convex.py, keys.py; each exposes
`init_app(app)`. Their logic: synthetic.py (the synthetic dataset), comparison.py, latency.py and
tables.py (compare), timing_report.py (log-summary), legacy_import.py (db import-legacy),
postgres_to_convex.py (sync-convex), key_admin.py (keys), convex_admin.py (Convex bulk import).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from commands import compare, db, keys, log_summary, seed, sync_convex

    seed.init_app(app)
    compare.init_app(app)
    log_summary.init_app(app)
    db.init_app(app)
    sync_convex.init_app(app)
    keys.init_app(app)
