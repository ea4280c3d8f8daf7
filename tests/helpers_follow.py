"""Helpers of the follower's tests: the follower as a process, two writers, and the comparison of
PostgreSQL with Convex after it (docs/contract.md §14)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import requests

from commands.sync import capture
from helpers import API_KEY, ROOT, WORKSPACE
from services.convex.admin import ConvexAdmin

DEMO_PHONE_ID = "demo-phone-number-id"


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def follow_status(url: str, schema: str = "public") -> dict[str, Any]:
    """`sync-convex --status`'s report, read in-process (the CLI prints the same function's answer)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return capture.status(conn)


def caught_up(url: str, schema: str = "public") -> bool:
    try:
        report = follow_status(url, schema)
    except psycopg.OperationalError:
        return False
    return report["backfilled"] and report["backlog"] == 0


# -- data ------------------------------------------------------------------------------------------

def _at(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1767225600 + seconds))


def phone_of(n: int) -> str:
    return f"+62812{n:08d}"


def synthetic_dataset(contacts: int, workspaces: int = 2) -> dict[str, Any]:
    """The demo workspace (with its Kapso phone number id) and `workspaces - 1` others, `contacts`
    contacts spread over them, each with notes and a conversation of a few messages."""
    spaces = [{"id": WORKSPACE, "name": "Follow demo", "kapso_phone_id": DEMO_PHONE_ID, "created_at": _at(0)}]
    spaces += [{"id": str(uuid.UUID(int=i + 2)), "name": f"Follow {i}", "kapso_phone_id": None,
                "created_at": _at(0)} for i in range(workspaces - 1)]
    records = []
    for n in range(contacts):
        messages = [{"direction": "inbound" if m % 2 == 0 else "outbound", "content": f"pesan {n} {m} visa UK",
                     "message_type": "text", "kapso_message_id": f"wamid.seed-{n}-{m}", "status": "delivered",
                     "created_at": _at(100 + n * 10 + m)} for m in range(n % 4)]
        records.append({
            "workspace_id": spaces[n % workspaces]["id"], "phone": phone_of(n), "name": f"Kontak {n}",
            "kapso_name": None, "email": None, "lead_status": "new", "lead_score": n % 100, "tags": ["seed"],
            "created_at": _at(n), "updated_at": _at(n),
            "notes": [{"content": f"catatan {n}", "created_at": _at(50 + n)}] * (n % 3),
            "conversation": None if not messages else {
                "status": "open", "unread_count": 0, "last_message_at": messages[-1]["created_at"],
                "last_message_preview": messages[-1]["content"], "created_at": messages[0]["created_at"],
                "messages": messages}})
    return {"workspaces": spaces, "contacts": records}


@dataclass
class Touched:
    """What the writers changed: (workspace_id, phone) of every contact touched, and those deleted."""

    contacts: set[tuple[str, str]] = field(default_factory=set)
    deleted: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    operations: dict[str, int] = field(default_factory=dict)

    def add(self, workspace: str, phone: str, operation: str, deleted: bool = False) -> None:
        with self.lock:
            (self.deleted if deleted else self.contacts).add((workspace, phone))
            if not deleted:
                self.deleted.discard((workspace, phone))
            self.operations[operation] = self.operations.get(operation, 0) + 1


# -- writers ---------------------------------------------------------------------------------------

class Writer(threading.Thread):
    """A loop of writes until `stop`, riding out a restarting database (a failed write is tried later)."""

    def __init__(self, stop: threading.Event, touched: Touched, seed: int) -> None:
        super().__init__(daemon=True)
        self.stop, self.touched, self.random = stop, touched, random.Random(seed)
        self.errors: list[str] = []
        self.failed_writes = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.write()
            except (psycopg.OperationalError, psycopg.InterfaceError, requests.RequestException,
                    # two writers racing (one deletes what the other writes into): that write fails, as in an app
                    psycopg.IntegrityError, psycopg.errors.DeadlockDetected):
                self.failed_writes += 1
                self.reset()
                time.sleep(0.2)
            except Exception as error:  # reported by the test, not lost in a thread
                self.errors.append(f"{type(error).__name__}: {error}")
                self.reset()
            time.sleep(0.01)

    def write(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        pass


class SqlWriter(Writer):
    """Another application writing PostgreSQL directly: inserts, updates and deletes on all five tables."""

    def __init__(self, url: str, stop: threading.Event, touched: Touched, seed: int, first_phone: int) -> None:
        super().__init__(stop, touched, seed)
        self.url, self.next_phone = url, first_phone
        self.conn: psycopg.Connection | None = None

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _pick(self, sql: str, params: Any = ()) -> tuple | None:
        return self.conn.execute(sql + " ORDER BY random() LIMIT 1", params).fetchone()

    def write(self) -> None:
        if self.conn is None:
            self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
        operation = self.random.choice(OPERATIONS)
        with self.conn.transaction():
            getattr(self, operation)()

    def contact_insert(self) -> None:
        workspace = self._pick("SELECT id::text FROM workspaces")[0]
        self.next_phone += 1
        phone = phone_of(self.next_phone)
        self.conn.execute("INSERT INTO contacts (workspace_id, phone, name, tags) VALUES (%s, %s, %s, %s)",
                          (workspace, phone, f"Baru {self.next_phone}", ["sql"]))
        self.touched.add(workspace, phone, "contact_insert")

    def contact_update(self) -> None:
        row = self._pick("SELECT id, workspace_id::text, phone FROM contacts WHERE phone IS NOT NULL")
        if row:
            self.conn.execute("""UPDATE contacts SET lead_status = %s, lead_score = %s, tags = tags || %s,
                                 updated_at = now() WHERE id = %s""",
                              (self.random.choice(["hot", "warm", "cold"]), self.random.randrange(101),
                               [f"t{self.random.randrange(5)}"], row[0]))
            self.touched.add(row[1], row[2], "contact_update")

    def contact_delete(self) -> None:
        row = self._pick("SELECT id, workspace_id::text, phone FROM contacts WHERE phone IS NOT NULL")
        if row:
            self.conn.execute("DELETE FROM contacts WHERE id = %s", (row[0],))
            self.touched.add(row[1], row[2], "contact_delete", deleted=True)

    def note_write(self) -> None:
        row = self._pick("SELECT id, workspace_id, phone FROM contacts WHERE phone IS NOT NULL")
        if row:
            kind = self.random.choice(["insert", "insert", "update", "delete"])
            if kind == "insert":
                self.conn.execute("INSERT INTO contact_notes (workspace_id, contact_id, content) VALUES (%s, %s, %s)",
                                  (row[1], row[0], f"catatan {self.random.random():.6f}"))
            else:
                note = self._pick("SELECT id FROM contact_notes WHERE contact_id = %s", (row[0],))
                if note and kind == "update":
                    self.conn.execute("UPDATE contact_notes SET content = content || '!' WHERE id = %s", note)
                elif note:
                    self.conn.execute("DELETE FROM contact_notes WHERE id = %s", note)
            self.touched.add(str(row[1]), row[2], f"note_{kind}")

    def conversation_write(self) -> None:
        row = self._pick("""SELECT c.id, c.workspace_id, c.phone, v.id FROM contacts c
                            LEFT JOIN conversations v ON v.contact_id = c.id WHERE c.phone IS NOT NULL""")
        if not row:
            return
        if row[3] is None:
            self.conn.execute("INSERT INTO conversations (workspace_id, contact_id) VALUES (%s, %s)", row[:2])
            kind = "insert"
        elif self.random.random() < 0.2:
            self.conn.execute("DELETE FROM conversations WHERE id = %s", (row[3],))
            kind = "delete"
        else:
            self.conn.execute("UPDATE conversations SET status = %s, unread_count = unread_count + 1 WHERE id = %s",
                              (self.random.choice(["open", "closed"]), row[3]))
            kind = "update"
        self.touched.add(str(row[1]), row[2], f"conversation_{kind}")

    def message_write(self) -> None:
        row = self._pick("""SELECT v.id, v.workspace_id, c.phone FROM conversations v
                            JOIN contacts c ON c.id = v.contact_id WHERE c.phone IS NOT NULL""")
        if not row:
            return
        kind = self.random.choice(["insert", "insert", "update", "delete"])
        if kind == "insert":
            self.conn.execute("""INSERT INTO messages (workspace_id, conversation_id, direction, content,
                                 kapso_message_id) VALUES (%s, %s, 'outbound', %s, %s)""",
                              (row[1], row[0], "Balasan tentang visa", f"wamid.sql-{uuid.uuid4().hex}"))
        else:
            message = self._pick("SELECT id FROM messages WHERE conversation_id = %s", (row[0],))
            if message and kind == "update":
                self.conn.execute("UPDATE messages SET status = 'read' WHERE id = %s", message)
            elif message:
                self.conn.execute("DELETE FROM messages WHERE id = %s", message)
        self.touched.add(str(row[1]), row[2], f"message_{kind}")

    def workspace_write(self) -> None:
        if self.random.random() < 0.5:
            self.conn.execute("UPDATE workspaces SET name = name || '.' WHERE id = %s", (WORKSPACE,))
            self.touched.add(WORKSPACE, phone_of(0), "workspace_update")
            return
        workspace = self.conn.execute("INSERT INTO workspaces (name) VALUES ('Sementara') RETURNING id::text"
                                      ).fetchone()[0]
        self.next_phone += 1
        phone = phone_of(self.next_phone)
        self.conn.execute("INSERT INTO contacts (workspace_id, phone) VALUES (%s, %s)", (workspace, phone))
        if self.random.random() < 0.5:  # a workspace deleted with its contact (PostgreSQL's cascade)
            self.conn.execute("DELETE FROM workspaces WHERE id = %s", (workspace,))
            self.touched.add(workspace, phone, "workspace_delete", deleted=True)
        else:
            self.touched.add(workspace, phone, "workspace_insert")


OPERATIONS = ["contact_insert", "contact_update", "contact_update", "contact_delete", "note_write", "note_write",
              "conversation_write", "message_write", "message_write", "workspace_write"]


class WebhookWriter(Writer):
    """Kapso delivering messages to Kontak's webhook (PostgreSQL's side), retried like Kapso retries."""

    def __init__(self, base_url: str, stop: threading.Event, touched: Touched, seed: int, phones: range) -> None:
        super().__init__(stop, touched, seed)
        self.base_url, self.phones, self.sent = base_url, phones, 0
        self.session = requests.Session()
        self.pending: tuple[bytes, list[str]] | None = None

    def write(self) -> None:
        if self.pending is None:
            phones = [phone_of(self.random.choice(self.phones)) for _ in range(self.random.randint(1, 4))]
            events = [{"message": {"id": f"wamid.hook-{uuid.uuid4().hex}", "timestamp": str(int(time.time())),
                                   "type": "text", "text": {"body": "Mau tanya soal visa UK"},
                                   "kapso": {"direction": "inbound"}},
                       "conversation": {"phone_number": phone, "phone_number_id": DEMO_PHONE_ID}} for phone in phones]
            self.pending = (json.dumps({"batch": True, "data": events}).encode(), phones)
        body, phones = self.pending
        response = self.session.post(self.base_url + "/api/webhook/kapso", data=body, timeout=20, headers={
            "x-api-key": API_KEY, "Content-Type": "application/json",
            "X-Webhook-Event": "whatsapp.message.received"})
        if response.status_code == 200:
            self.pending, self.sent = None, self.sent + 1
            for phone in phones:
                self.touched.add(WORKSPACE, phone, "webhook_message")
        elif response.status_code not in (502, 503, 504):
            raise AssertionError(f"webhook answered {response.status_code}: {response.text[:200]}")


# -- the comparison --------------------------------------------------------------------------------

COUNTS_SQL = {
    "contacts": "SELECT count(*) FROM contacts WHERE workspace_id = %s",
    "notes": "SELECT count(*) FROM contact_notes WHERE workspace_id = %s",
    "conversations": "SELECT count(*) FROM conversations WHERE workspace_id = %s",
    "messages": "SELECT count(*) FROM messages WHERE workspace_id = %s",
}


def count_differences(url: str, admin: ConvexAdmin, workspaces: set[str]) -> list[str]:
    problems = []
    with psycopg.connect(url, autocommit=True) as conn:
        workspaces |= {row[0] for row in conn.execute("SELECT id::text FROM workspaces")}
        for workspace in sorted(workspaces):
            postgres = {t: conn.execute(q, (workspace,)).fetchone()[0] for t, q in COUNTS_SQL.items()}
            convex = admin.counts(workspace)
            if postgres != convex:
                problems.append(f"workspace {workspace}: PostgreSQL {postgres} != Convex {convex}")
    return problems


def lookup_differences(base_url: str, contacts: set[tuple[str, str]], deleted: set[tuple[str, str]]) -> list[str]:
    """Each contact looked up on both routes: byte-equal answers; deleted ones found on neither."""
    problems, session = [], requests.Session()
    for workspace, phone in sorted(contacts | deleted):
        answers = [session.get(base_url + route, params={"phone": phone, "workspace_id": workspace},
                               headers={"x-api-key": API_KEY}, timeout=20)
                   for route in ("/api/contacts/by-phone", "/api/contacts/by-phone-convex")]
        if (answers[0].status_code, answers[0].content) != (answers[1].status_code, answers[1].content):
            problems.append(f"{workspace} {phone}: {answers[0].status_code} {answers[0].text[:300]} != "
                            f"{answers[1].status_code} {answers[1].text[:300]}")
        elif (workspace, phone) in deleted and answers[0].status_code == 200 and answers[0].json().get("found"):
            problems.append(f"{workspace} {phone}: deleted, still found")
    return problems
