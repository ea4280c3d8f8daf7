"""Contacts found, linked, created and merged by BSUID first, phone second (docs/webhook.md §7.4-§7.6).

Used inside one webhook transaction. Webhook writers serialise on the
identifiers they name: a transaction advisory lock per (workspace, identifier),
taken in one sorted order before anything is read, so two deliveries naming
the same person never both create them, and never wait on each other in a
circle. convex/convex/webhook.ts applies the same rules in a Convex mutation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg

from services.webhook_judge import Person

_CONTACT = ("id", "phone", "bsuid", "parent_bsuid", "username", "name", "kapso_name", "email", "lead_status",
            "lead_score", "tags", "created_at", "updated_at")
_CONVERSATION = ("id", "status", "unread_count", "last_message_at", "last_message_preview", "created_at")
# Filled from the newest contact that has them (the legacy import's rule, docs/own-data.md).
_NEWEST_WINS = ("name", "kapso_name", "email", "lead_status", "username", "parent_bsuid")


class Statements(Protocol):
    def run(self, sql: str, params: tuple | dict) -> psycopg.Cursor: ...


def lock_key(workspace_id: str, kind: str, value: str) -> int:
    """A signed 64-bit advisory lock key for one identifier of one workspace."""
    digest = hashlib.blake2b(f"{workspace_id}|{kind}|{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_identifiers(tx: Statements, keys: Iterable[int]) -> None:
    """Take every key's transaction lock, in sorted order (the scan keeps the array's order)."""
    ordered = sorted(set(keys))
    if ordered:
        tx.run("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (ordered,)).fetchall()


@dataclass(frozen=True)
class Wanted:
    """The identifiers a contact must end up with (None: keep what it has)."""

    phone: str | None
    bsuid: str | None


class ContactStore:
    """The contact side of one delivery's transaction."""

    def __init__(self, tx: Statements) -> None:
        self.tx = tx
        self._conversations: dict[str, str] = {}  # contact id -> conversation id, this delivery

    def conversation_of(self, workspace_id: str, contact_id: str, at: datetime) -> str:
        """The contact's one conversation, created with its first message (`at`) when it has none."""
        if contact_id not in self._conversations:
            row = self.tx.run(
                """INSERT INTO conversations (workspace_id, contact_id, status, unread_count, created_at)
                   VALUES (%s, %s, 'open', 0, %s) ON CONFLICT (contact_id) DO NOTHING RETURNING id""",
                (workspace_id, contact_id, at)).fetchone()
            if row is None:
                row = self.tx.run("SELECT id FROM conversations WHERE contact_id = %s", (contact_id,)).fetchone()
            self._conversations[contact_id] = row[0]
        return self._conversations[contact_id]

    def _rows(self, sql: str, params: tuple) -> list[dict[str, Any]]:
        return [dict(zip(_CONTACT, row, strict=True))
                for row in self.tx.run(f"SELECT {', '.join(_CONTACT)} FROM contacts {sql}", params).fetchall()]

    def find(self, workspace_id: str, person: Person) -> tuple[dict | None, dict | None]:
        """(the contact with the BSUID, the contact with the phone), each locked, each may be None."""
        rows = self._rows("WHERE workspace_id = %s AND (bsuid = %s OR phone = %s) ORDER BY id FOR UPDATE",
                          (workspace_id, person.bsuid, person.phone))
        by_bsuid = next((r for r in rows if person.bsuid is not None and r["bsuid"] == person.bsuid), None)
        by_phone = next((r for r in rows if person.phone is not None and r["phone"] == person.phone), None)
        return by_bsuid, by_phone

    def existing(self, workspace_id: str, person: Person) -> dict | None:
        """The contact an identity change or a conversation event names: no linking, no creating."""
        by_bsuid, by_phone = self.find(workspace_id, person)
        return by_bsuid or by_phone

    def for_message(self, workspace_id: str, person: Person, at: datetime, name: str | None) -> str:
        """Find (merging when BSUID and phone name two contacts), link or create; the contact's id."""
        by_bsuid, by_phone = self.find(workspace_id, person)
        if by_bsuid is not None and by_phone is not None and by_bsuid["id"] != by_phone["id"]:
            contact_id = self.merge(by_bsuid, by_phone, Wanted(person.phone, person.bsuid))
        elif by_bsuid is None and by_phone is None:
            return self.tx.run(
                """INSERT INTO contacts (workspace_id, phone, bsuid, parent_bsuid, username, kapso_name,
                                         created_at, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (workspace_id, person.phone, person.bsuid, person.parent_bsuid, person.username, name, at, at),
            ).fetchone()[0]
        else:
            contact_id = (by_bsuid or by_phone)["id"]
        self._update_details(contact_id, person, name)
        return contact_id

    def _update_details(self, contact_id: str, person: Person, name: str | None) -> None:
        """Missing identifiers added; name, username and parent BSUID from the event when it has them."""
        self.tx.run(
            """UPDATE contacts SET phone = COALESCE(phone, %s), bsuid = COALESCE(bsuid, %s),
                   kapso_name = COALESCE(%s, kapso_name), username = COALESCE(%s, username),
                   parent_bsuid = COALESCE(%s, parent_bsuid)
               WHERE id = %s""",
            (person.phone, person.bsuid, name, person.username, person.parent_bsuid, contact_id))

    def merge(self, first: dict, second: dict, wanted: Wanted) -> str:
        """Merge two contacts into the older (equal: `first`), nothing lost (§7.5); the survivor's id."""
        survivor, merged = (second, first) if second["created_at"] < first["created_at"] else (first, second)
        self._merge_conversations(survivor["id"], merged["id"])
        self.tx.run("UPDATE contact_notes SET contact_id = %s WHERE contact_id = %s", (survivor["id"], merged["id"]))
        self.tx.run("DELETE FROM contacts WHERE id = %s", (merged["id"],))
        fields = merged_fields(survivor, merged, wanted)
        assignments = ", ".join(f"{column} = %({column})s" for column in fields)
        self.tx.run(f"UPDATE contacts SET {assignments} WHERE id = %(survivor)s",
                    {**fields, "survivor": survivor["id"]})
        return survivor["id"]

    def _merge_conversations(self, survivor_id: str, merged_id: str) -> None:
        rows = self.tx.run(f"SELECT contact_id, {', '.join(_CONVERSATION)} FROM conversations "
                           "WHERE contact_id = ANY(%s) ORDER BY id FOR UPDATE", ([survivor_id, merged_id],)).fetchall()
        by_contact = {row[0]: dict(zip(_CONVERSATION, row[1:], strict=True)) for row in rows}
        kept, gone = by_contact.get(survivor_id), by_contact.get(merged_id)
        if gone is None:
            return
        if kept is None:  # the merged contact's conversation, whole, becomes the survivor's
            self.tx.run("UPDATE conversations SET contact_id = %s WHERE id = %s", (survivor_id, gone["id"]))
            return
        self.tx.run("UPDATE messages SET conversation_id = %s WHERE conversation_id = %s", (kept["id"], gone["id"]))
        self.tx.run(
            """UPDATE conversations SET last_message_at = %(at)s, last_message_preview = %(preview)s,
                   unread_count = %(unread)s, created_at = %(created)s WHERE id = %(id)s""",
            {**combined_conversation(kept, gone), "id": kept["id"]})

    def change_identifier(self, workspace_id: str, contact: dict, field: str, value: str) -> bool:
        """Move `field` of `contact` to `value`, merging with the contact that holds it (§7.6); changed?"""
        if contact[field] == value:
            return False
        holder = self._rows(f"WHERE workspace_id = %s AND {field} = %s FOR UPDATE", (workspace_id, value))
        if holder:
            wanted = Wanted(value, None) if field == "phone" else Wanted(None, value)
            self.merge(contact, holder[0], wanted)
        else:
            self.tx.run(f"UPDATE contacts SET {field} = %s WHERE id = %s", (value, contact["id"]))
        return True


def _newest_first(survivor: dict, merged: dict) -> list[dict]:
    return [merged, survivor] if merged["updated_at"] >= survivor["updated_at"] else [survivor, merged]


def merged_fields(survivor: dict, merged: dict, wanted: Wanted) -> dict[str, Any]:
    """The survivor's columns after a merge (§7.5)."""
    newest = _newest_first(survivor, merged)
    fields = {column: next((r[column] for r in newest if r[column] not in (None, "")), None)
              for column in _NEWEST_WINS}
    # `new` is the default a webhook gives: a salesperson's status is never lost to it.
    fields["lead_status"] = next((r["lead_status"] for r in newest if r["lead_status"] not in (None, "", "new")),
                                 "new")
    tags: list[str] = []
    for record in newest:
        tags += [tag for tag in record["tags"] or [] if tag not in tags]
    fields.update(
        tags=tags, lead_score=max(survivor["lead_score"], merged["lead_score"]),
        updated_at=max(survivor["updated_at"], merged["updated_at"]),
        phone=wanted.phone or survivor["phone"] or merged["phone"],
        bsuid=wanted.bsuid or survivor["bsuid"] or merged["bsuid"],
    )
    return fields


def combined_conversation(kept: dict, gone: dict) -> dict[str, Any]:
    """One conversation from two (§7.5): the later last message, summed unread, earlier creation."""
    later = gone if gone["last_message_at"] is not None and (
        kept["last_message_at"] is None or gone["last_message_at"] > kept["last_message_at"]) else kept
    return {"at": later["last_message_at"], "preview": later["last_message_preview"],
            "unread": kept["unread_count"] + gone["unread_count"],
            "created": min(kept["created_at"], gone["created_at"])}
