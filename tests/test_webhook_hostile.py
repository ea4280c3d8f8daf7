"""POST /api/webhook/kapso with deliveries as they really arrive, and hostile ones (docs/webhook.md).

Every authenticated JSON object is answered 200 with its counts; an event
that cannot be stored is ignored on its own, with one log line naming the
reason, and the other events of the delivery are stored.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

import psycopg
import pytest

from helpers import API_KEY, WORKSPACE
from helpers import sign as sign_with
from services.contract import rules
from services.postgres.store import LOOKUP_SQL

SECRET = "whsec-hostile-8e41"
URL = "/api/webhook/kapso"
PNID = "pnid-hostile-1"
NOW = int(time.time())
T0 = NOW - 10 * 86400  # well inside the accepted window
RECEIVED = {"X-Webhook-Event": "whatsapp.message.received"}
SENT = {"X-Webhook-Event": "whatsapp.message.sent"}


@pytest.fixture()
def region() -> str:
    return "ID"


@pytest.fixture()
def client(make_app, load, region):
    load({"workspaces": [{"id": WORKSPACE, "name": "Hostile", "kapso_phone_id": PNID}], "contacts": []})
    return make_app(KAPSO_WEBHOOK_SECRET=SECRET, DEFAULT_REGION=region).test_client()


@pytest.fixture()
def ignored_reasons(caplog):
    """The reasons of the `webhook event ignored` lines logged so far."""
    caplog.set_level(logging.WARNING, logger="kontak")

    def reasons() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.name == "kontak" and "ignored" in r.getMessage()]
        found = [IGNORED.fullmatch(line) for line in lines]
        assert all(found), lines
        return [m.group(1) for m in found for _ in range(int(m.group(2)))]

    return reasons


IGNORED = re.compile(r"webhook events ignored reason=([a-z_]+) count=([1-9][0-9]*)")


def post(client, body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(URL, data=raw, headers={"Content-Type": "application/json", **(headers or {}),
                                               "X-Webhook-Signature": sign_with(raw, SECRET)})


def answer(client, body, headers=None) -> dict:
    response = post(client, body, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def counts(stored=0, duplicates=0, ignored=0) -> dict:
    return {"received": True, "stored": stored, "duplicates": duplicates, "ignored": ignored}


def v2(message_id="wamid.1", phone="+6281234567890", at=T0, text="halo", name="Budi", direction="inbound"):
    """A v2 event as Kapso's documentation shows it."""
    counterpart = "from" if direction == "inbound" else "to"
    return {
        "message": {"id": message_id, "timestamp": str(at) if isinstance(at, int) else at, "type": "text",
                    "text": {"body": text}, counterpart: phone.lstrip("+"),
                    "kapso": {"direction": direction, "status": "received" if direction == "inbound" else "sent",
                              "content": text}},
        "conversation": {"id": "conv-1", "phone_number": phone, "phone_number_id": PNID,
                         "kapso": {"contact_name": name}},
        "is_new_conversation": True,
        "phone_number_id": PNID,
    }


def batch(events) -> dict:
    return {"type": "whatsapp.message.received", "batch": True, "data": events}


def messages(db) -> list[tuple]:
    return db.execute("SELECT kapso_message_id, content, message_type, status FROM messages ORDER BY id").fetchall()


def lookup(client, phone):
    return client.get("/api/contacts/by-phone", headers={"x-api-key": API_KEY},
                      query_string={"phone": phone, "workspace_id": WORKSPACE}).get_json()


# -- deliveries that carry no message are acknowledged, never refused -----------------

@pytest.mark.parametrize("headers, body", [
    ({"X-Webhook-Event": "whatsapp.phone_number.created"},
     {"phone_number_id": PNID, "project": {"id": "p-1"}, "customer": {"id": "c-1"}}),
    ({"X-Webhook-Event": "workflow.execution.handoff"},
     {"workflow_execution": {"id": "we-1"}, "handoff": {"reason": "human"}, "whatsapp_conversation_id": "c"}),
    ({"X-Webhook-Event": "contact.updated"}, {"contact": {"id": "k-1", "wa_id": "6281234567890"}}),
    ({}, {"event": "workflow.execution.failed", "data": {"workflow_execution": {"id": "we-2"}}}),
    ({}, {"object": "whatsapp_business_account", "entry": []}),
    ({}, {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [{"value": {}}]}]}),
    ({}, {"hello": "world"}),
    ({}, {}),
    ({"X-Webhook-Batch": "TRUE"}, {"type": "whatsapp.message.received", "data": []}),
    ({}, {"batch": True, "data": "not a list"}),
], ids=["phone_number.created", "workflow handoff", "contact.updated", "v1 project event", "empty Meta entry",
        "Meta change without messages", "unknown object", "empty object", "empty batch", "batch data not a list"])
def test_deliveries_without_a_message_are_200_and_ignored(client, db, ignored_reasons, headers, body):
    assert answer(client, body, headers) == counts(ignored=1)
    assert len(ignored_reasons()) == 1 and ignored_reasons()[0] in ("unknown_event", "no_message")
    assert messages(db) == []


@pytest.mark.parametrize("raw, error", [
    (b"[]", "Body must be a JSON object"),
    (b"null", "Body must be a JSON object"),
    (b'"text"', "Body must be a JSON object"),
    (b'{"a": NaN}', "Invalid JSON"),
    (b'{"a": Infinity}', "Invalid JSON"),
    (b'{"a": ', "Invalid JSON"),
])
def test_only_invalid_json_or_non_objects_are_400(client, raw, error):
    response = post(client, raw)
    assert response.status_code == 400 and response.get_json() == {"error": error}


# -- every place Kapso puts the phone number id, the sender and the name ----------------

def test_phone_number_id_only_in_message_kapso(client, db):
    body = v2()
    del body["phone_number_id"], body["conversation"]["phone_number_id"]
    body["message"]["kapso"]["phone_number_id"] = PNID
    assert answer(client, body, RECEIVED) == counts(stored=1)


def test_older_delivery_with_phone_number_id_only_in_whatsapp_config(client, db):
    event = v2()
    del event["phone_number_id"], event["conversation"]["phone_number_id"]
    event["whatsapp_config"] = {"id": "cfg-1", "phone_number_id": PNID}
    body = {"event": "whatsapp.message.received", "data": event}
    assert answer(client, body) == counts(stored=1)
    assert messages(db) == [("wamid.1", "halo", "text", "received")]


def test_conversation_contact_name_is_read(client, db):
    body = v2()
    del body["conversation"]["kapso"]
    body["conversation"]["contact_name"] = "Siti"
    assert answer(client, body, RECEIVED) == counts(stored=1)
    assert db.execute("SELECT kapso_name FROM contacts").fetchone()[0] == "Siti"


def test_meta_sender_from_the_single_contact_when_from_is_missing(client, db):
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": PNID},
        "contacts": [{"wa_id": "6281234567890", "profile": {"name": "Dewi"}}],
        "messages": [{"id": "wamid.M", "timestamp": str(T0), "type": "text", "text": {"body": "hi"}}]}}]}]}
    assert answer(client, body) == counts(stored=1)
    assert db.execute("SELECT phone, kapso_name FROM contacts").fetchone() == ("+6281234567890", "Dewi")


@pytest.mark.parametrize("transcript, content, expected", [
    ({"text": "mau ke kanada"}, "[Audio]", "mau ke kanada"),
    ("mau ke inggris", None, "mau ke inggris"),
    (None, "voice note text", "voice note text"),
    (None, None, "[Audio]"),
])
def test_voice_note_transcripts(client, db, transcript, content, expected):
    body = v2()
    body["message"].update(type="audio", audio={"id": "media-1"})
    del body["message"]["text"]
    body["message"]["kapso"] = {"direction": "inbound", "transcript": transcript, "content": content}
    assert answer(client, body, RECEIVED) == counts(stored=1)
    assert messages(db)[0][1:3] == (expected, "audio")


# -- one bad event is ignored on its own, never a 5xx ---------------------------------

LONG_ID = secrets.token_urlsafe(3072)  # ~4 KB, incompressible: over PostgreSQL's index entry limit


def poison(kind: str, message_id: str = "wamid.poison") -> dict:
    body = v2(message_id=message_id)
    if kind == "nul in message id":
        body["message"]["id"] = "wamid.\x00x"
    elif kind == "nul in phone number id":
        body["phone_number_id"] = body["conversation"]["phone_number_id"] = "pnid\x00"
    elif kind == "nul in type":
        body["message"]["type"] = "te\x00xt"
    elif kind == "surrogate in message id":
        body["message"]["id"] = "wamid.\ud800"
    elif kind == "4 KB message id":
        body["message"]["id"] = LONG_ID
    elif kind == "400-digit timestamp":
        body["message"]["timestamp"] = 10 ** 400
    elif kind == "year 5138":
        body["message"]["timestamp"] = "99999999999"
    elif kind == "type over 64":
        body["message"]["type"] = "t" * 65
    elif kind == "invalid phone":
        body["conversation"]["phone_number"] = "call me"
    return body


POISONS = {
    "nul in message id": "invalid_message_id",
    "nul in phone number id": "invalid_phone_number_id",
    "nul in type": "invalid_type",
    "surrogate in message id": "invalid_message_id",
    "4 KB message id": "invalid_message_id",
    "400-digit timestamp": "invalid_timestamp",
    "year 5138": "invalid_timestamp",
    "type over 64": "invalid_type",
    "invalid phone": "invalid_phone",
}


@pytest.mark.parametrize("kind", POISONS)
def test_a_poison_event_alone_is_200_ignored(client, db, ignored_reasons, kind):
    assert answer(client, poison(kind), RECEIVED) == counts(ignored=1)
    assert ignored_reasons() == [POISONS[kind]]
    assert messages(db) == []


@pytest.mark.parametrize("kind", POISONS)
def test_ten_good_events_and_one_poison_store_the_ten(client, db, kind):
    good = [v2(message_id=f"wamid.g{i}", at=T0 + i, text=f"pesan {i}") for i in range(10)]
    body = batch(good[:5] + [poison(kind)] + good[5:])
    assert answer(client, body, {"X-Webhook-Batch": "true"}) == counts(stored=10, ignored=1)
    assert [m[0] for m in messages(db)] == [f"wamid.g{i}" for i in range(10)]
    # Kapso retries nothing: the same delivery again is ten duplicates and the same poison.
    assert answer(client, body, {"X-Webhook-Batch": "true"}) == counts(duplicates=10, ignored=1)


def test_the_poison_in_the_raw_bytes_too(client, db):
    """Escapes as they arrive on the wire: \\u0000 and a lone \\ud83d in every text field."""
    raw = json.dumps(v2()).replace('"halo"', '"ha\\u0000lo \\ud83d"').replace('"Budi"', '"Bu\\u0000di\\udc00"')
    assert answer(client, raw.encode(), RECEIVED) == counts(stored=1)
    assert messages(db)[0][1] == "halo \ufffd"
    assert db.execute("SELECT kapso_name FROM contacts").fetchone()[0] == "Budi\ufffd"
    assert db.execute("SELECT last_message_preview FROM conversations").fetchone()[0] == "halo \ufffd"


def test_nul_in_the_contact_name_is_removed(client, db):
    assert answer(client, v2(name="Ra\x00ni"), RECEIVED) == counts(stored=1)
    assert db.execute("SELECT kapso_name FROM contacts").fetchone()[0] == "Rani"


def test_a_future_timestamp_does_not_pin_the_last_interaction(client, db):
    answer(client, v2(message_id="wamid.ok", at=T0, text="visa"), RECEIVED)
    assert answer(client, poison("year 5138"), RECEIVED) == counts(ignored=1)
    context = lookup(client, "+6281234567890")
    assert context["last_interaction"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(T0)))
    assert db.execute("SELECT last_message_preview FROM conversations").fetchone()[0] == "visa"


@pytest.mark.parametrize("field, value", [
    ("message.id", {"x": 1}), ("message.id", ["a"]), ("message.id", 12), ("message.id", " "),
    ("message.timestamp", True), ("message.timestamp", "1e400"), ("message.timestamp", "12abc"),
    ("message.timestamp", -5), ("message.timestamp", None), ("message.timestamp", 1.5),
    ("message.type", {"t": 1}), ("message.type", "\ud800"), ("message", "text"), ("message", []),
    ("conversation", 5), ("conversation.phone_number", "\x00"), ("conversation.phone_number", "9" * 5000),
    ("conversation.kapso", "x"), ("conversation.kapso.contact_name", 7), ("phone_number_id", ["x"]),
    ("phone_number_id", "p" * 257), ("message.text", "plain"), ("message.text.body", {"b": 1}),
    ("message.kapso", None), ("message.kapso.status", "weird"), ("message.kapso.direction", 5),
])
def test_odd_values_anywhere_never_give_a_5xx(client, db, field, value):
    body = v2()
    *path, last = field.split(".")
    target = body
    for key in path:
        target = target[key]
    target[last] = value
    response = post(client, body, RECEIVED)
    assert response.status_code == 200
    result = response.get_json()
    assert result["stored"] + result["duplicates"] + result["ignored"] == 1


def test_timestamp_forms(client, db):
    """Numbers and decimal strings, IEEE double x 1000, half-even; the 2000-01-01 bound is inclusive."""
    base = 1_760_000_000  # x.0005 x 1000 lands exactly on .5 in double arithmetic
    cases = [(base, "1"), (f" {base}.0005 ", "2"), (f"{base}.0015", "3"), (base + 0.0025, "4"), ("1.76e9", "5"),
             (946684800, "6"), (946684799.999, "7"), ("+1760000000", "8"), (".5", "9"), ("1760000000.", "10")]
    body = batch([v2(message_id=f"wamid.t{n}", at=at) for at, n in cases])
    assert answer(client, body) == counts(stored=7, ignored=3)
    stamps = db.execute("SELECT kapso_message_id, (extract(epoch FROM created_at) * 1000)::bigint FROM messages "
                        "ORDER BY id").fetchall()
    ms = base * 1000
    assert stamps == [("wamid.t1", ms), ("wamid.t2", ms), ("wamid.t3", ms + 2), ("wamid.t4", ms + 2),
                      ("wamid.t5", ms), ("wamid.t6", 946684800000), ("wamid.t8", ms)]


# -- contacts: region, order, names ------------------------------------------------------

@pytest.mark.parametrize("region", ["GB"])
def test_default_region_is_the_configured_one(client, db, region):
    body = v2(phone="07700 900123")
    assert answer(client, body, RECEIVED) == counts(stored=1)
    assert db.execute("SELECT phone FROM contacts").fetchone()[0] == "+447700900123"
    assert lookup(client, "07700 900123")["found"] is True


def test_created_at_is_the_first_event_and_the_name_the_last_non_blank(client, db):
    events = [v2(message_id="m1", at=T0 + 50, name="First"), v2(message_id="m2", at=T0 + 10, name="Second"),
              v2(message_id="m3", at=T0 + 90, name=" ")]
    assert answer(client, batch(events)) == counts(stored=3)
    created, name = db.execute("SELECT (extract(epoch FROM created_at))::bigint, kapso_name FROM contacts").fetchone()
    assert (created, name) == (T0 + 50, "Second")


def test_a_duplicate_message_still_names_the_contact(client, db):
    answer(client, v2(name="Old"), RECEIVED)
    assert answer(client, v2(name="New"), RECEIVED) == counts(duplicates=1)
    assert db.execute("SELECT kapso_name FROM contacts").fetchone()[0] == "New"


# -- statuses move forward only ------------------------------------------------------------

def status(event: str, message_id: str = "wamid.out") -> tuple[dict, dict]:
    body = v2(message_id=message_id, direction="outbound")
    return body, {"X-Webhook-Event": f"whatsapp.message.{event}"}


@pytest.mark.parametrize("sequence, final", [
    (["read", "delivered"], "read"),
    (["delivered", "delivered"], "delivered"),
    (["delivered", "failed"], "delivered"),
    (["failed", "read"], "failed"),
    (["failed", "delivered", "read"], "failed"),
    (["read", "sent"], "read"),
])
def test_status_moves_forward_only(client, db, sequence, final):
    answer(client, v2(message_id="wamid.out", direction="outbound"), SENT)
    results = [answer(client, *status(event)) for event in sequence]
    assert results[0] == counts(stored=1)
    assert all(r == counts(duplicates=1) for r in results[1:])
    assert db.execute("SELECT status FROM messages").fetchone()[0] == final


def test_meta_statuses_forward_only_and_invalid(client, db, ignored_reasons):
    answer(client, v2(message_id="wamid.out", direction="outbound"), SENT)
    meta = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": PNID},
        "statuses": [{"id": "wamid.out", "status": "read"}, {"id": "wamid.out", "status": "delivered"},
                     {"id": "wamid.out", "status": "deleted"}, {"id": "wamid.none", "status": "deleted"}]}}]}]}
    assert answer(client, meta) == counts(stored=1, duplicates=1, ignored=2)
    assert ignored_reasons() == ["invalid_status", "unknown_message"]
    assert db.execute("SELECT status FROM messages").fetchone()[0] == "read"


def test_a_status_after_its_message_in_one_batch(client, db):
    body = v2(message_id="wamid.b", direction="outbound")
    read = {"X-Webhook-Event": "whatsapp.message.read"}
    assert answer(client, body, SENT) == counts(stored=1)
    assert answer(client, body, read) == counts(stored=1)
    assert answer(client, body, read) == counts(duplicates=1)


# -- storage: retried whole on a lost race, never on anything else -------------------------

@pytest.fixture()
def losing_race(db):
    """The first `n` message inserts fail with SQLSTATE `code`: a nextval survives the rollback."""
    def install(code: str, n: int) -> None:
        db.execute("CREATE SEQUENCE race_seq")
        db.execute(f"""CREATE FUNCTION lose_race() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN IF nextval('race_seq') <= {n} THEN
                           RAISE EXCEPTION 'lost' USING ERRCODE = '{code}'; END IF; RETURN NEW; END $$""")
        db.execute("CREATE TRIGGER lose_race BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION lose_race()")
    yield install
    db.execute("DROP TRIGGER IF EXISTS lose_race ON messages")
    db.execute("DROP FUNCTION IF EXISTS lose_race()")
    db.execute("DROP SEQUENCE IF EXISTS race_seq")


def attempts(db) -> int:
    return db.execute("SELECT last_value FROM race_seq").fetchone()[0]


@pytest.mark.parametrize("code", ["40001", "40P01"])
def test_a_lost_race_is_retried_whole(client, db, losing_race, code):
    losing_race(code, 2)
    assert answer(client, batch([v2(message_id="a"), v2(message_id="b")])) == counts(stored=2)
    assert attempts(db) == 4  # two lost attempts, then a and b
    assert db.execute("SELECT count(*), sum(unread_count) FROM conversations").fetchone() == (1, 2)


def test_a_race_lost_every_time_is_503_and_stores_nothing(client, db, losing_race):
    losing_race("40P01", 1000)
    response = post(client, v2(), RECEIVED)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert attempts(db) == 5  # transaction_attempts
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0


def test_any_other_failure_is_not_retried(client, db, losing_race):
    losing_race("P0001", 1000)
    assert post(client, v2(), RECEIVED).status_code == 502
    assert attempts(db) == 1


# -- the lookup reads a bounded prefix of each message ------------------------------------------

def test_ten_one_megabyte_messages_look_up_from_their_prefix(client, db, timing_lines):
    filler = "z" * 1_000_000
    for i in range(10):
        body = v2(message_id=f"wamid.big{i}", at=T0 + i, text=f"need a visa {filler} australia")
        del body["message"]["kapso"]["content"]  # the text once: the body stays under 1 MiB
        assert answer(client, body, RECEIVED) == counts(stored=1)
    context = lookup(client, "+6281234567890")
    assert context["found"] is True
    assert context["conversation_summary"] == "Discussed: Visa"  # australia is past the 2,000th code point
    assert timing_lines()[-1].split(" queries=")[1].startswith("1 ")
    row = db.execute(LOOKUP_SQL, {"workspace_id": WORKSPACE, "phone": "+6281234567890", "bsuid": None}).fetchone()
    assert len(row[-1]) == 10 and max(len(m) for m in row[-1]) == 2000


def test_the_prefix_is_counted_in_code_points(client, db):
    text = "\U0001F600" * 1995 + " visa " + "a" * 10 + " canada"
    assert answer(client, v2(text=text), RECEIVED) == counts(stored=1)
    assert lookup(client, "+6281234567890")["conversation_summary"] == "Discussed: Visa"


def test_the_challenge_alias(client):
    response = client.get(URL, query_string={"challenge": "abc"})
    assert response.status_code == 200 and response.data == b"abc"


def test_no_psycopg_error_escapes_for_text_postgres_cannot_hold(client, db):
    """Every text column written from a delivery gets cleaned text: a direct insert would fail."""
    with pytest.raises(psycopg.DataError):
        db.execute("SELECT %s::text", ("a\x00b",))
    assert answer(client, v2(text="a\x00b"), RECEIVED) == counts(stored=1)


# -- every input bounded (docs/contract.md §11, docs/webhook.md §1) ----------------------


def test_a_delivery_over_the_event_cap_is_413_and_stores_nothing(client, db, caplog):
    cap = rules().max_events_per_delivery
    # 340,000 empty events fit in a 1 MiB body: refused before a single one is read.
    started = time.monotonic()
    response = post(client, json.dumps(batch([{}] * 340_000), separators=(",", ":")).encode())
    assert response.status_code == 413
    assert response.get_json() == {"error": f"Too many events (at most {cap} per delivery)"}
    assert time.monotonic() - started < 2  # not a timing figure: the old 5.9 s of work per such delivery
    meta = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": PNID}, "statuses": [{"id": "x", "status": "read"}] * (cap + 1)}}]}]}
    assert post(client, meta).status_code == 413
    assert messages(db) == []


def test_ignored_events_cost_one_log_line_per_reason(client, ignored_reasons, caplog):
    cap = rules().max_events_per_delivery
    events = [{}] * (cap - 1) + [v2(phone="call me")]
    assert answer(client, batch(events)) == counts(ignored=cap)
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert lines == [f"webhook events ignored reason=unknown_workspace count={cap - 1}",
                     "webhook events ignored reason=invalid_phone count=1"]


@pytest.mark.parametrize(("raw", "status"), [
    (b'{"a": ' + b"[" * 511 + b"]" * 511 + b"}", 200),
    (b'{"a": ' + b"[" * 512 + b"]" * 512 + b"}", 400),
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    (b'{"a": -Infinity}', 400),
    (b'{"message": {"id": "w.big", "timestamp": ' + b"1" * 5000 + b"}}", 200),
    (b'{"a": 1, "a": {"b": 2}}', 200),
])
def test_one_json_reading_for_both_webhooks(client, raw, status):
    """docs/webhook.md §1.1, the rules contract/webhook_rules.json gives both backends."""
    response = post(client, raw)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json() == (counts(ignored=1) if status == 200 else {"error": "Invalid JSON"})
