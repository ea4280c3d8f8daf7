"""Plain helpers of the test suite: constants, signing, contract files, polling, SQL readers.

Fixtures live in conftest.py; everything a test imports lives here (or in
helpers_replay.py), never in conftest.py or another test module. pytest.ini
puts tests/ on sys.path, so a test says `from helpers import ...`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import psycopg
import pytest
import requests

from commands.keys import workspace_keys
from services import api_keys
from tools.embedded_pg import EmbeddedPostgres
from tools.servers import GunicornServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "contract"
API_KEY = "test-key-5f2c9d8e"
WORKSPACE = "00000000-0000-4000-8000-000000000001"
OTHER_WORKSPACE = "00000000-0000-4000-8000-000000000002"
TABLES = "workspaces, contacts, conversations, messages, contact_notes"
LIVE_SECRET = "live-webhook-secret-77"
WEBHOOK_SECRET = "whsec-test-3b1f"  # test_webhook.py's own app


def sign(body: bytes, secret: str) -> str:
    """X-Webhook-Signature: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_contract(name: str) -> Any:
    return json.loads((CONTRACT / name).read_text(encoding="utf-8"))


def wait_until(condition: Callable[[], Any], timeout: float, what: str = "the condition") -> float:
    """Poll `condition` every 50 ms until it is true; fail after `timeout` s. Returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def close_app(application: Any) -> None:
    """Close every pool the app opened."""
    application.extensions["kontak.db"].close()
    convex = application.extensions.get("kontak.convex")
    if convex is not None and hasattr(convex, "close"):
        convex.close()


def query_rows(conn: psycopg.Connection, sql: str, params: Any = None) -> list[tuple]:
    """Every row of one query, as tuples."""
    return conn.execute(sql, params).fetchall()


def scalar(conn: psycopg.Connection, sql: str, params: Any = None) -> Any:
    """The first column of the first row of one query."""
    return conn.execute(sql, params).fetchone()[0]


# --- docs/contract.md §6 timing lines ----------------------------------------------------------------------

TIMING_LINE = re.compile(
    r"timing route=(?P<route>\S+) backend=(?P<backend>\S+) method=(?P<method>\S+) status=(?P<status>\d+) "
    r"found=(?P<found>true|false|-) total_ms=(?P<total>\d+\.\d\d) backend_ms=(?P<backend_ms>\d+\.\d\d) "
    r"queries=(?P<queries>\d+) phone=(?P<phone>\S+) bsuid=(?P<bsuid>\S+) request_id=(?P<rid>[A-Za-z0-9._-]+)$"
)


def timing_lines_in(log: str, marker: str = "timing route=") -> list[str]:
    return [line for line in log.splitlines() if marker in line]


# --- message text the suite sends (the log-safety check looks for it) ---------------------------------

PARITY_MESSAGES = ["Halo kak, ini untuk adik saya, bukan untuk saya", "Mau masuk kampus di Inggris",
            "Is the IELTS needed for the visa?", "Berapa biaya S1 di Australia?", "ok", "Terima kasih",
            "Ada beasiswa ke Kanada?", "MBA or master?", "undergraduate please", "Aussie or UK?",
            "visanya berapa lama?", "toefl cukup?", "saya masuk bulan depan", "bachelor", "sip"]


# --- what no log may hold (docs/contract.md §6; checked after every test by conftest.logs_hold_no_secrets) ---

# Usernames the identity tests send (tests/test_identity.py, tests/test_identity_concurrency.py).
TEST_USERNAMES = ("budi.username", "user_0_race", "user_1_race", "user_2_race", "user_3_race")
PHONE = re.compile(r"(?<![0-9A-Za-z_.])\+?\d{9,15}(?![0-9A-Za-z_])")
SIGNATURE = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
# A BSUID (docs/webhook.md §7.9) with more of it than the mask's 3 characters.
BSUID = re.compile(r"(?<![0-9A-Za-z])[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{4,128}(?![0-9A-Za-z])")


def _usernames_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {v for k, v in value.items() if k == "username" and isinstance(v, str)}
        return found.union(*(_usernames_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_usernames_in(v) for v in value))
    return set()


@functools.cache
def usernames() -> frozenset[str]:
    """WhatsApp usernames the suite sends (the replay corpus's, the tests' own), long enough to spot."""
    names = _usernames_in(load_contract("webhook_replay.json")) | set(TEST_USERNAMES)
    return frozenset(name for name in names if len(name) >= 6)


@functools.cache
def message_contents() -> frozenset[str]:
    """Message and note text the suite sends or loads, long enough not to occur by chance."""
    contents = {m["content"] for m in load_contract("webhook_scenario.json")["messages"]}
    for contact in load_contract("demo_data.json")["contacts"]:
        contents |= {n["content"] for n in contact["notes"]}
        contents |= {m["content"] for m in (contact["conversation"] or {}).get("messages", [])}
    contents |= set(PARITY_MESSAGES)
    return frozenset(c for c in contents if len(c) >= 8)


def log_leaks(text: str) -> list[str]:
    """Everything in `text` no log may hold: unmasked phones, keys and secrets, signatures, any workspace key
    the suite issued (or its SHA-256 or display prefix), message text. Empty when the text is clean."""
    leaks = [f"phone {m}" for m in PHONE.findall(text)]
    leaks += [f"signature {m[:8]}…" for m in SIGNATURE.findall(text)]
    leaks += [f"bsuid {m[:6]}…" for m in BSUID.findall(text)]
    leaks += [f"username {u[:2]}…" for u in usernames() if u in text]
    leaks += [f"secret {s[:4]}…" for s in (API_KEY, LIVE_SECRET, WEBHOOK_SECRET) if s in text]
    for key in ISSUED:
        if key in text or api_keys.hash_key(key) in text or key[:api_keys.PREFIX_LENGTH] in text:
            leaks.append(f"workspace key {key[:4]}…")
    leaks += [f"message text {c[:12]!r}" for c in message_contents() if c in text]
    return leaks


def signal_each(pids: list[int], sig: int) -> None:
    """Send `sig` to each process still there (a backend listed a moment ago may have exited since)."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def postgres_processes(server: EmbeddedPostgres) -> list[int]:
    """The postmaster first (so it forks no new backend), then every backend and helper."""
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    return [postmaster] + [p.pid for p in psutil.Process(postmaster).children(recursive=True)]


# --- keys per workspace ------------------------------------------------------------------------------

OTHER_PHONE_ID = "other-phone-number-id"
DEMO_PHONE = "+6281234567890"
# contract/demo_answer.json: the lookup answer the demo contact of demo_data.json must produce on both backends.
DEMO_ANSWER: dict[str, Any] = load_contract("demo_answer.json")["answer"]
DEMO_NAME: str = DEMO_ANSWER["contact"]["name"]
UNAUTHORIZED = {"error": "Unauthorized"}
# Every key the tests made: log_leaks() checks none (nor its hash or prefix) reached a log.
ISSUED: list[str] = []


def two_workspace_dataset() -> dict[str, Any]:
    """The demo data with a Kapso phone number id on the second workspace too."""
    data = copy.deepcopy(load_contract("demo_data.json"))
    data["workspaces"][1]["kapso_phone_id"] = OTHER_PHONE_ID
    return data


def make_key(conn: psycopg.Connection, workspace: str = WORKSPACE,
             name: str = "bot") -> tuple[workspace_keys.KeyRow, str]:
    """A new key of `workspace` in PostgreSQL: its row and the key itself."""
    row, key = workspace_keys.create_key(conn, workspace, name)
    ISSUED.append(key)
    return row, key


def push(standin_url: str, rows: list[workspace_keys.KeyRow]) -> None:
    workspace_keys.push_to_convex(standin_url, API_KEY, rows)


def unknown_key() -> str:
    key = api_keys.generate_key()
    ISSUED.append(key)
    return key


def delivery() -> tuple[bytes, dict[str, str]]:
    """One batch: a message for each workspace's phone number id."""
    def event(message_id: str, phone_number_id: str) -> dict[str, Any]:
        return {"message": {"id": message_id, "timestamp": "1767225600", "type": "text", "text": {"body": "halo"},
                            "kapso": {"direction": "inbound"}},
                "conversation": {"phone_number": "+6281111111111", "phone_number_id": phone_number_id}}

    body = {"batch": True, "data": [event("wamid.iso-a", "demo-phone-number-id"),
                                    event("wamid.iso-b", OTHER_PHONE_ID)]}
    headers = {"Content-Type": "application/json", "X-Webhook-Event": "whatsapp.message.received"}
    return json.dumps(body).encode(), headers


def stored_workspaces(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT workspace_id::text FROM messages WHERE kapso_message_id LIKE 'wamid.iso-%' "
                        "ORDER BY kapso_message_id").fetchall()
    return [r[0] for r in rows]


# --- a real gunicorn under load -------------------------------------------------------------------------

PG_ROUTE = "/api/contacts/by-phone"
CONVEX_ROUTE = "/api/contacts/by-phone-convex"
PARAMS = {"phone": "081234567890", "workspace_id": WORKSPACE}
HEADERS = {"x-api-key": API_KEY}
UNAVAILABLE = {"error": "Backend unavailable"}
TIMEOUT = {"error": "Backend timeout"}
# docs/contract.md §3: the only error answers a backend fault may produce.
SECTION_3_ERRORS = {502: {"error": "Backend error"}, 503: UNAVAILABLE, 504: TIMEOUT}
CLIENT_TIMEOUT = 20  # a request still unanswered after this is a hung request


@dataclass
class Answer:
    started: float  # time.monotonic() when sent
    elapsed: float
    status: int | None  # None: no HTTP answer (connection refused, reset, closed)
    body: Any = None
    retry_after: str | None = None
    error: str | None = None

    @property
    def finished(self) -> float:
        return self.started + self.elapsed


def ask(session: requests.Session, url: str, route: str = PG_ROUTE) -> Answer:
    started = time.monotonic()
    try:
        response = session.get(url + route, params=PARAMS, headers=HEADERS, timeout=CLIENT_TIMEOUT)
    except requests.Timeout:
        pytest.fail(f"a request to {route} hung for {CLIENT_TIMEOUT} s")
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        # Refused, reset, or cut off mid-body (a killed worker): no HTTP answer, counted as such.
        return Answer(started, time.monotonic() - started, None, error=type(exc).__name__)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return Answer(started, time.monotonic() - started, response.status_code, body, response.headers.get("Retry-After"))


def assert_found(answer: Answer) -> None:
    assert answer.status == 200, answer
    assert answer.body["found"] is True and answer.body["contact"]["name"] == DEMO_NAME, answer


def assert_section_3(answer: Answer, *statuses: int) -> None:
    """A §3 error answer, exactly: its status, its JSON body, Retry-After with every 503 and 504."""
    assert answer.status in statuses, answer
    assert answer.body == SECTION_3_ERRORS[answer.status], answer
    if answer.status in (503, 504):
        assert answer.retry_after and answer.retry_after.isdigit(), answer


def workers(server: GunicornServer) -> set[int]:
    return {child.pid for child in psutil.Process(server.process.pid).children()}


def assert_clean_log(server: GunicornServer) -> None:
    log = server.log()
    assert "Traceback" not in log and "status=500" not in log, log[-3000:]


# --- careless and hostile requests: one row each (test_bad_input.py, the access-log test) ------------

_W = WORKSPACE
_LOOKUP = "/api/contacts/by-phone"
_CONVEX = "/api/contacts/by-phone-convex"
_HOOK = "/api/webhook/kapso"
_KEY = {"x-api-key": API_KEY}
_JSON = {**_KEY, "Content-Type": "application/json"}


class Row(NamedTuple):
    name: str
    method: str
    target: str  # path and query, already percent-encoded as a client would send it
    status: int
    error: str
    headers: dict | None = _KEY
    body: bytes | None = None


BAD_INPUT_ROWS = [
    Row("missing phone", "GET", f"{_LOOKUP}?workspace_id={_W}", 400, "Missing phone parameter"),
    Row("empty phone", "GET", f"{_LOOKUP}?phone=&workspace_id={_W}", 400, "Missing phone parameter"),
    Row("missing workspace", "GET", f"{_LOOKUP}?phone=081234567890", 400, "Missing workspace_id parameter"),
    Row("empty workspace", "GET", f"{_CONVEX}?phone=081234567890&workspace_id=", 400, "Missing workspace_id parameter"),
    Row("no parameters at all", "GET", _CONVEX, 400, "Missing phone parameter"),
    Row("repeated phone: the first counts", "GET", f"{_LOOKUP}?phone=x&phone=081234567890&workspace_id={_W}", 400,
        "Invalid phone number"),
    Row("7 KB phone", "GET", f"{_LOOKUP}?phone={'1' * 7_000}&workspace_id={_W}", 400, "Invalid phone number"),
    Row("7 KB workspace", "GET", f"{_CONVEX}?phone=081234567890&workspace_id={'a' * 7_000}", 400,
        "Invalid workspace_id"),
    # Request lines over 8,190 bytes are refused by gunicorn.conf.py's limit (docs/contract.md §11).
    Row("10 KB phone", "GET", f"{_LOOKUP}?phone={'1' * 10_000}&workspace_id={_W}", 414, "URI too long"),
    Row("1 MB phone", "GET", f"{_LOOKUP}?phone={'1' * 1_048_576}&workspace_id={_W}", 414, "URI too long"),
    Row("percent-encoded NUL", "GET", f"{_LOOKUP}?phone=0812%00345678&workspace_id={_W}", 400, "Invalid phone number"),
    Row("NUL in workspace", "GET", f"{_CONVEX}?phone=081234567890&workspace_id={_W}%00", 400, "Invalid workspace_id"),
    Row("invalid UTF-8", "GET", f"{_LOOKUP}?phone=%FF%FE0812&workspace_id={_W}", 400, "Invalid phone number"),
    Row("SQL injection phone", "GET", f"{_LOOKUP}?phone=%27%20OR%201%3D1%20--&workspace_id={_W}", 400,
        "Invalid phone number"),
    Row("SQL injection workspace", "GET", f"{_LOOKUP}?phone=081234567890&workspace_id=%27%20OR%20%271%27%3D%271",
        400, "Invalid workspace_id"),
    Row("JSON injection phone", "GET", f"{_CONVEX}?phone=%7B%22%24ne%22%3A1%7D&workspace_id={_W}", 400,
        "Invalid phone number"),
    Row("letters in phone", "GET", f"{_LOOKUP}?phone=0812abc34567&workspace_id={_W}", 400, "Invalid phone number"),
    Row("emoji phone", "GET", f"{_CONVEX}?phone=%F0%9F%93%9E0812345678&workspace_id={_W}", 400,
        "Invalid phone number"),
    Row("30 digits", "GET", f"{_LOOKUP}?phone={'8' * 30}&workspace_id={_W}", 400, "Invalid phone number"),
    Row("only +", "GET", f"{_LOOKUP}?phone=%2B&workspace_id={_W}", 400, "Invalid phone number"),
    Row("UUID without dashes", "GET", f"{_LOOKUP}?phone=081234567890&workspace_id={_W.replace('-', '')}", 400,
        "Invalid workspace_id"),
    Row("UUID in braces", "GET", f"{_CONVEX}?phone=081234567890&workspace_id=%7B{_W}%7D", 400, "Invalid workspace_id"),
    Row("number as workspace", "GET", f"{_LOOKUP}?phone=081234567890&workspace_id=1", 400, "Invalid workspace_id"),
    Row("POST to a lookup", "POST", f"{_LOOKUP}?phone=081234567890&workspace_id={_W}", 405, "Method not allowed"),
    Row("DELETE to a lookup", "DELETE", _CONVEX, 405, "Method not allowed"),
    Row("PUT to the webhook", "PUT", _HOOK, 405, "Method not allowed"),
    Row("unknown path", "GET", "/api/contacts", 404, "Not found"),
    Row("unknown nested path", "GET", f"{_LOOKUP}/extra", 404, "Not found"),
    Row("path traversal", "GET", "/api/../../etc/passwd", 404, "Not found"),
    Row("webhook without auth", "POST", _HOOK, 401, "Unauthorized", {"Content-Type": "application/json"}, b"{}"),
    Row("webhook with no body", "POST", _HOOK, 400, "Invalid JSON", _KEY, None),
    Row("webhook form body", "POST", _HOOK, 400, "Invalid JSON",
        {**_KEY, "Content-Type": "application/x-www-form-urlencoded"}, b"a=b&c=d"),
    Row("webhook plain text", "POST", _HOOK, 400, "Invalid JSON", {**_KEY, "Content-Type": "text/plain"}, b"hello"),
    Row("webhook XML", "POST", _HOOK, 400, "Invalid JSON", {**_KEY, "Content-Type": "application/xml"}, b"<a/>"),
    Row("webhook deeply nested", "POST", _HOOK, 400, "Invalid JSON", _JSON, b"[" * 200_000 + b"]" * 200_000),
    Row("webhook huge", "POST", _HOOK, 413, "Payload too large", _JSON, b'{"x": "' + b"a" * 1_100_000 + b'"}'),
    Row("webhook JSON null", "POST", _HOOK, 400, "Body must be a JSON object", _JSON, b"null"),
    Row("webhook JSON array", "POST", _HOOK, 400, "Body must be a JSON object", _JSON, b"[1, 2]"),
    Row("webhook invalid UTF-8", "POST", _HOOK, 400, "Invalid JSON", _JSON, b'{"message": "\xff\xfe"}'),
    Row("header over 8 KB", "GET", f"{_LOOKUP}?phone=081234567890&workspace_id={_W}", 431, "Request headers too large",
        {**_KEY, "X-Padding": "p" * 9000}),
]


def start_pgbouncer(server: EmbeddedPostgres, base: Path) -> tuple[str, subprocess.Popen]:
    """A PgBouncer in transaction mode in front of `server` (Debian's binary; `make test` installs it):
    its URL and its process, once it accepts connections."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)
    if found is None:
        pytest.fail("pgbouncer is not installed: `make test` installs Debian's pgbouncer")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ini = base / "pgbouncer.ini"
    ini.write_text(f"""[databases]
postgres = host=127.0.0.1 port={server.port} dbname=postgres user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
logfile = {base}/pgbouncer.log
pidfile = {base}/pgbouncer.pid
""")
    args = [found, str(ini)]
    if os.geteuid() == 0:  # PgBouncer will not run as root
        for folder in (base.parent, base):
            os.chmod(folder, 0o777)
        args[1:1] = ["-u", server.user]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(url, connect_timeout=1, prepare_threshold=None).close()
            return url, process
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.1)
