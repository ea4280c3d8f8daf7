"""Shadow lookups (docs/contract.md §15): the other backend asked the same question after the answer,
its bytes compared, against real gunicorn, PostgreSQL, the stand-in and the follower."""

from __future__ import annotations

import copy
import logging
import os
import queue
import re
import signal
import time
from typing import Any

import psycopg
import requests
from prometheus_client import REGISTRY

from helpers import API_KEY, CONVEX_ROUTE, PG_ROUTE, WORKSPACE, load_contract, log_leaks, wait_until
from helpers_follow import caught_up
from helpers_shadow import comparisons, looped_for, metrics_committed, mismatch_lines, p99, shadow_lines
from services import shadow
from services.lookup import LookupQuery

DEMO = load_contract("demo_data.json")
BUDI, SITI = DEMO["contacts"][0]["phone"], DEMO["contacts"][1]["phone"]
MISSING = "+6281399998888"
HEADERS = {"x-api-key": API_KEY}


def lookup(url: str, route: str, phone: str, request_id: str | None = None) -> requests.Response:
    headers = {**HEADERS, **({"X-Request-ID": request_id} if request_id else {})}
    return requests.get(url + route, params={"phone": phone, "workspace_id": WORKSPACE}, headers=headers, timeout=20)


# --- unit level: naming, masking, the bound --------------------------------------------------------------


def test_differing_fields_name_keys_one_level_into_contact_never_values():
    found = {"found": True, "contact": {"name": "Budi", "lead_status": "hot", "lead_score": 80, "tags": []},
             "notes": ["a"], "conversation_summary": None, "last_interaction": None}
    other = copy.deepcopy(found)
    other["notes"], other["contact"]["lead_status"], other["contact"]["lead_score"] = ["b"], "cold", 80.0

    def encoded(value: Any) -> bytes:
        import json
        return json.dumps(value).encode()

    assert shadow.differing_fields(encoded(found), encoded(other)) == "contact.lead_status,contact.lead_score,notes"
    assert shadow.differing_fields(encoded(found), encoded({"found": False, "context": None})) == \
        "found,contact,notes,conversation_summary,last_interaction,context"
    reordered = {"contact": found["contact"], **{k: v for k, v in found.items() if k != "contact"}}
    assert shadow.differing_fields(encoded(found), encoded(reordered)) == "found,contact"
    assert shadow.differing_fields(b"not json", encoded(found)) == "-"


def _pair(request_id: str = "unit-1", phone: str | None = BUDI, bsuid: str | None = "ID.13491208655302741918") -> Any:
    return shadow.Pair(route=PG_ROUTE, primary="supabase", query=LookupQuery(WORKSPACE, phone, bsuid),
                       api_key=API_KEY, status=200, body=b'{"found":false,"context":null}\n', primary_seconds=0.00042,
                       request_id=request_id)


def test_the_lines_are_masked_and_in_the_contracts_key_order():
    logger = logging.getLogger("kontak.shadow")
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    level = logger.level
    logger.setLevel(logging.INFO)  # no app was made here to configure it
    logger.addHandler(handler)
    try:
        shadow.log_pair(_pair(), shadow.Asked(200, b"{}", 0.0013), "mismatch", "notes,contact.lead_status")
        shadow.log_pair(_pair("unit-2", bsuid=None), shadow.Asked(503, None, 0.0), "error")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = "\n".join(lines)
    assert text.splitlines() == [
        "shadow route=/api/contacts/by-phone primary=supabase shadow=convex status=200 shadow_status=200 "
        "primary_ms=0.42 shadow_ms=1.30 result=mismatch phone=+62812****890 bsuid=ID.134****918 request_id=unit-1",
        "shadow-mismatch request_id=unit-1 primary=supabase shadow=convex fields=notes,contact.lead_status",
        "shadow route=/api/contacts/by-phone primary=supabase shadow=convex status=200 shadow_status=503 "
        "primary_ms=0.42 shadow_ms=0.00 result=error phone=+62812****890 bsuid=- request_id=unit-2"]
    assert log_leaks(text) == []


def test_a_full_queue_drops_the_pair_and_counts_it(make_app):
    app = make_app(SHADOW_SAMPLE="1", SHADOW_QUEUE_SIZE="1")
    own = shadow.Shadow(app)
    # The queues of this process, without their consumers: the first pair stays queued.
    own._pid, own._pairs, own._rechecks = os.getpid(), queue.Queue(1), queue.Queue(1)
    labels = {"primary": "supabase", "shadow": "convex", "result": "dropped"}
    before = REGISTRY.get_sample_value("kontak_shadow_comparisons_total", labels) or 0.0
    own.offer(_pair("q-1"))
    own.offer(_pair("q-2"))
    own.offer(_pair("q-3"))
    assert REGISTRY.get_sample_value("kontak_shadow_comparisons_total", labels) == before + 2
    assert own._pairs.get_nowait().request_id == "q-1"


def test_the_shadow_answer_is_the_bytes_its_route_answers(make_app, demo, convex):
    convex.import_dataset(DEMO)
    app = make_app()
    client = app.test_client()
    for phone in (BUDI, SITI, MISSING):
        query = LookupQuery(WORKSPACE, phone, None)
        for backend, route in (("supabase", PG_ROUTE), ("convex", CONVEX_ROUTE)):
            answered = client.get(route, query_string={"phone": phone, "workspace_id": WORKSPACE}, headers=HEADERS)
            asked = shadow.ask(app, backend, query, API_KEY)
            assert answered.status_code == asked.status == 200
            assert asked.body == answered.data, (backend, phone)
            assert asked.seconds > 0, "the backend's time, as backend_ms counts it"


# --- a real gunicorn ------------------------------------------------------------------------------------


def test_every_lookup_on_either_route_is_compared_once_across_workers(gunicorn, demo, convex):
    convex.import_dataset(DEMO)
    server = gunicorn(SHADOW_SAMPLE="1")
    phones = [BUDI, SITI, MISSING]
    sent = 0
    for n in range(60):
        # A new connection each: the two workers' accept loops share them out.
        for route in (PG_ROUTE, CONVEX_ROUTE):
            assert lookup(server.url, route, phones[n % 3]).status_code == 200
            sent += 1
    wait_until(lambda: len(shadow_lines(server.log())) >= sent, 30, "a shadow line for every lookup")
    lines = shadow_lines(server.log())
    assert len(lines) == sent
    assert {line["result"] for line in lines} == {"match"}
    assert sum(line["primary"] == "supabase" for line in lines) == sent // 2
    assert all(line["shadow_status"] == "200" and line["phone"] != "-" for line in lines)
    assert all(line["route"] == (PG_ROUTE if line["primary"] == "supabase" else CONVEX_ROUTE) for line in lines)
    counted = comparisons(server)
    if counted is not None or metrics_committed():
        assert counted is not None, "/metrics answers once blueprints/metrics.py is committed"
        assert sum(counted.values()) == sent, counted
        assert counted == {"match": sent}, counted


def test_a_note_only_in_convex_is_a_mismatch_naming_notes(gunicorn, demo, convex):
    drifted = copy.deepcopy(DEMO)
    drifted["contacts"][0]["notes"].append({"content": "Written in Convex only, never in PostgreSQL",
                                            "created_at": "2026-02-01T00:00:00.000Z"})
    convex.import_dataset(drifted)
    server = gunicorn(SHADOW_SAMPLE="1", SHADOW_RECHECK_MS="200")
    assert lookup(server.url, PG_ROUTE, BUDI, "drift-pg").status_code == 200
    assert lookup(server.url, CONVEX_ROUTE, BUDI, "drift-convex").status_code == 200
    assert lookup(server.url, PG_ROUTE, SITI, "same-pg").status_code == 200
    wait_until(lambda: len(mismatch_lines(server.log())) == 2 and len(shadow_lines(server.log())) == 3, 20,
               "the two mismatches, re-checked")
    results = {line["rid"]: line["result"] for line in shadow_lines(server.log())}
    assert results == {"drift-pg": "mismatch", "drift-convex": "mismatch", "same-pg": "match"}
    mismatches = {line["rid"]: line for line in mismatch_lines(server.log())}
    assert mismatches["drift-pg"] == {"rid": "drift-pg", "primary": "supabase", "shadow": "convex", "fields": "notes"}
    assert mismatches["drift-convex"] == {"rid": "drift-convex", "primary": "convex", "shadow": "supabase",
                                          "fields": "notes"}
    counted = comparisons(server)
    if counted is not None or metrics_committed():
        assert counted == {"mismatch": 2, "match": 1}, counted


def test_a_change_the_follower_applies_within_the_recheck_is_lag(own_postgres, own_standin, gunicorn,
                                                                 follower_process):
    postgres, standin = own_postgres(DEMO), own_standin()
    env = {"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    follower = follower_process(env).start()
    wait_until(lambda: caught_up(postgres.url), 90, "the follower's first copy")
    server = gunicorn(**env, SHADOW_SAMPLE="1", SHADOW_RECHECK_MS="3000")
    assert lookup(server.url, CONVEX_ROUTE, BUDI, "before").status_code == 200
    wait_until(lambda: shadow_lines(server.log()), 20, "the first comparison")
    assert shadow_lines(server.log())[0]["result"] == "match"

    # The follower held while PostgreSQL changes: Convex answers the old contact, PostgreSQL the new one.
    follower.process.send_signal(signal.SIGSTOP)
    try:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute("UPDATE contacts SET lead_status = 'cold' WHERE workspace_id = %s AND phone = %s",
                         (WORKSPACE, BUDI))
        stale = lookup(server.url, CONVEX_ROUTE, BUDI, "lagging")
        asked_at = time.monotonic()
        assert stale.status_code == 200 and stale.json()["contact"]["lead_status"] == "hot"
    finally:
        follower.process.send_signal(signal.SIGCONT)
    wait_until(lambda: caught_up(postgres.url), 10, "the follower applying the change")
    assert time.monotonic() - asked_at < 3.0, "applied within the re-check delay (else this test proves nothing)"
    wait_until(lambda: len(shadow_lines(server.log())) == 2, 20, "the re-checked comparison")
    lagging = shadow_lines(server.log())[1]
    assert (lagging["rid"], lagging["result"], lagging["primary"]) == ("lagging", "lag", "convex")
    assert mismatch_lines(server.log()) == []


def test_a_frozen_shadow_backend_costs_the_primary_nothing(gunicorn, demo, own_standin):
    standin = own_standin(DEMO)
    off = gunicorn(CONVEX_SITE_URL=standin.url, SHADOW_SAMPLE="0")
    on = gunicorn(CONVEX_SITE_URL=standin.url, SHADOW_SAMPLE="1", SHADOW_QUEUE_SIZE="20")
    for server in (off, on):
        looped_for(server.url, 1, clients=4)  # warm pools in both workers
    wait_until(lambda: len(shadow_lines(on.log())) > 0, 20, "the warm-up's comparisons")
    baseline = looped_for(off.url, 10, clients=4)
    compared_before, counted_before = len(shadow_lines(on.log())), comparisons(on)

    standin.process.send_signal(signal.SIGSTOP)
    try:
        frozen = looped_for(on.url, 20, clients=4)
        compared_frozen = len(shadow_lines(on.log())) - compared_before
    finally:
        standin.process.send_signal(signal.SIGCONT)
    resumed_at = len(on.log())

    assert shadow_lines(off.log()) == [], "SHADOW_SAMPLE=0 compares nothing"
    assert all(status == 200 for status, _ in baseline + frozen), "no primary error"
    before, during = p99([s for _, s in baseline]), p99([s for _, s in frozen])
    assert during <= 1.5 * before, f"primary p99 {during * 1000:.1f} ms with Convex frozen, {before * 1000:.1f} off"
    # Per worker at most a queue and a pair in hand pending at each end (the warm-up's, the freeze's): the rest
    # of the lookups that logged no line were dropped.
    assert len(frozen) - compared_frozen > 2 * 2 * (20 + 1), (len(frozen), compared_frozen)
    results = {line["result"] for line in shadow_lines(on.log()[:resumed_at])[compared_before:]}
    assert results <= {"error", "match"} and "error" in results, results

    with requests.Session() as session:
        def matched_again() -> bool:
            session.get(on.url + PG_ROUTE, params={"phone": BUDI, "workspace_id": WORKSPACE}, headers=HEADERS,
                        timeout=20)
            return any(line["result"] == "match" for line in shadow_lines(on.log()[resumed_at:]))
        wait_until(matched_again, 30, "new matches once Convex answers again")
    counted = comparisons(on)
    if counted is not None or metrics_committed():
        assert counted is not None and counted_before is not None
        assert counted.get("dropped", 0) > counted_before.get("dropped", 0), (counted_before, counted)
    assert not re.search(r"Traceback", on.log())
