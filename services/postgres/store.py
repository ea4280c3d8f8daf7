"""The PostgreSQL lookup: one statement, one round trip (docs/contract.md §3)."""

from __future__ import annotations

from services.conversation_summary import SUMMARY_PREFIX_CHARS
from services.lookup_answer import MESSAGES_LIMIT, NOTES_LIMIT, ContactRecord
from services.postgres.pool import Database

# One statement, one round trip, found or not: the contact by its BSUID, else
# by its phone (each unique per workspace; UNION ALL under LIMIT 1 stops at the
# first branch that finds it), its conversation, and the newest notes and
# messages through their (…, created_at DESC, id DESC) indexes. Only the
# summary's prefix of each message leaves the server (left() counts code
# points), so a 1 MB message costs a lookup no more than a short one. A NULL
# inside tags (text[] allows one; an older import or a hand edit) never
# reaches the answer, whose tags are strings (contract/openapi.json).
# The select list after the contact `c`: its conversation `cv`'s last message time, its newest notes and
# the summary's prefix of its newest messages (bench/migration_live.py reads the same list).
CONTEXT_COLUMNS = f"""cv.last_message_at,
       ARRAY(SELECT n.content FROM contact_notes n
             WHERE n.contact_id = c.id
             ORDER BY n.created_at DESC, n.id DESC LIMIT {NOTES_LIMIT}) AS notes,
       ARRAY(SELECT left(m.content, {SUMMARY_PREFIX_CHARS}) FROM messages m
             WHERE m.conversation_id = cv.id
             ORDER BY m.created_at DESC, m.id DESC LIMIT {MESSAGES_LIMIT}) AS messages"""
LOOKUP_SQL = f"""
WITH c AS (
    (SELECT id, name, kapso_name, username, lead_status, lead_score, array_remove(tags, NULL) AS tags, created_at
     FROM contacts WHERE workspace_id = %(workspace_id)s AND bsuid = %(bsuid)s)
    UNION ALL
    (SELECT id, name, kapso_name, username, lead_status, lead_score, array_remove(tags, NULL) AS tags, created_at
     FROM contacts WHERE workspace_id = %(workspace_id)s AND phone = %(phone)s)
    LIMIT 1
)
SELECT c.name, c.kapso_name, c.username, c.lead_status, c.lead_score, c.tags, c.created_at,
       {CONTEXT_COLUMNS}
FROM c
LEFT JOIN conversations cv ON cv.contact_id = c.id
"""


def lookup_contact(db: Database, workspace_id: str, phone: str | None,
                   bsuid: str | None = None) -> ContactRecord | None:
    """The contact of `workspace_id` with `bsuid`, else with `phone` (E.164), or None."""
    params = {"workspace_id": workspace_id, "phone": phone, "bsuid": bsuid}

    row = db.read(lambda conn: conn.execute(LOOKUP_SQL, params).fetchone())
    if row is None:
        return None
    name, kapso_name, username, status, score, tags, created_at, last_message_at, notes, messages = row
    return ContactRecord(
        name=name, kapso_name=kapso_name, username=username, lead_status=status, lead_score=score, tags=tags,
        created_at=created_at, last_message_at=last_message_at,
        notes_newest_first=notes, messages_newest_first=messages or None,
    )
