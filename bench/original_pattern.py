"""The original system's query pattern (docs/contract.md §1), as a bench-only reference.

The replaced Next.js endpoint asked Supabase four times per lookup: the
contact; then its notes and its conversation in parallel; then the
conversation's messages (three sequential round trips when found). This
module does the same with psycopg over Kontak's own pool, shapes the answer
with the product's `build_context`, and serves it from a bench-only route
on the same kind of gunicorn, so the latency benchmark compares both query
patterns end to end over HTTP. It is never part of the product's app.

    gunicorn -c gunicorn.conf.py 'bench.original_pattern:create_app()'
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
from flask import Blueprint, Flask, Response

from app import create_app as create_kontak_app
from blueprints import protect, serve_lookup
from services import timing
from services.lookup_answer import MESSAGES_LIMIT, NOTES_LIMIT, ContactRecord, build_context
from services.postgres.pool import Database, get_db

ROUTE = "/api/bench/original/by-phone"
CONTACT_SQL = """SELECT id, name, kapso_name, lead_status, lead_score, tags, created_at
                 FROM contacts WHERE workspace_id = %s AND phone = %s"""
NOTES_SQL = f"""SELECT content FROM contact_notes WHERE contact_id = %s
                ORDER BY created_at DESC, id DESC LIMIT {NOTES_LIMIT}"""
CONVERSATION_SQL = "SELECT id, last_message_at FROM conversations WHERE contact_id = %s"
MESSAGES_SQL = f"""SELECT content FROM messages WHERE conversation_id = %s
                   ORDER BY created_at DESC, id DESC LIMIT {MESSAGES_LIMIT}"""

bp = Blueprint("original_pattern", __name__)
protect(bp, backend="supabase")
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _parallel() -> ThreadPoolExecutor:
    """One small thread pool per process, created after gunicorn forks."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="original-pattern")
    return _executor


def _fetch(db: Database, sql: str, params: tuple, many: bool) -> list | tuple | None:
    def run(conn: psycopg.Connection) -> list | tuple | None:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if many else cursor.fetchone()

    return db.read(run)


def lookup_original(db: Database, workspace_id: str, phone: str) -> ContactRecord | None:
    """Each `db.read` counts itself in the timing line, except the two made at once: those run on the
    pool's threads (outside the request's context) and count as one step of two round trips."""
    contact = _fetch(db, CONTACT_SQL, (workspace_id, phone), many=False)
    if contact is None:
        return None
    contact_id, name, kapso_name, status, score, tags, created_at = contact
    with timing.backend_call():  # notes and conversation at once, on two connections
        timing.count_round_trips(2)
        notes = _parallel().submit(_fetch, db, NOTES_SQL, (contact_id,), True)
        conversation = _parallel().submit(_fetch, db, CONVERSATION_SQL, (contact_id,), False).result()
        notes = [row[0] for row in notes.result()]
    messages = None
    last_message_at = None
    if conversation is not None:
        conversation_id, last_message_at = conversation
        messages = [row[0] for row in _fetch(db, MESSAGES_SQL, (conversation_id,), many=True)] or None
    return ContactRecord(name=name, kapso_name=kapso_name, lead_status=status, lead_score=score, tags=tags,
                         created_at=created_at, last_message_at=last_message_at,
                         notes_newest_first=notes, messages_newest_first=messages)


@bp.get(ROUTE)
def by_phone_original() -> Response:
    return serve_lookup(lambda query: build_context(lookup_original(get_db(), query.workspace_id, query.phone)))


def create_app() -> Flask:
    """Kontak's app plus the reference route (bench only)."""
    app = create_kontak_app()
    app.register_blueprint(bp)
    return app
