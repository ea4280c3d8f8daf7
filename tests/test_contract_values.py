"""Every rule both backends share is read from contract/, never written in Python: each value in use
is the contract's, and both backends' lookup answers fit the JSON Schema of contract/openapi.json."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import requests

import blueprints.kapso_webhook as kapso_webhook
from commands.db import schema_check
from commands.keys import workspace_keys
from helpers import API_KEY, CONTRACT, DEMO_ANSWER, WORKSPACE, load_contract
from services import api_keys, identity, lookup_answer, webhook_judge
from services.contract import limits, rules
from services.convex import admin as convex_admin
from services.convex import client as convex_client
from services.convex.admin import ConvexAdmin
from services.postgres import store

LIMITS = load_contract("limits.json")
RULES = load_contract("webhook_rules.json")
OPENAPI = json.loads((CONTRACT / "openapi.json").read_text(encoding="utf-8"))
LOOKUP_RESULT = jsonschema.Draft202012Validator(
    {"$ref": "#/components/schemas/LookupResult", "components": OPENAPI["components"]})
ROUTES = ["/api/contacts/by-phone", "/api/contacts/by-phone-convex"]


def test_the_loader_reads_the_contract_files():
    assert limits().notes_limit == LIMITS["notes_limit"] and limits().messages_limit == LIMITS["messages_limit"]
    assert limits().max_body_bytes == LIMITS["max_body_bytes"] and limits().key_batch_size == LIMITS["key_batch_size"]
    assert dict(limits().convex_paths) == LIMITS["convex_paths"]
    assert rules().max_challenge_length == RULES["max_challenge_length"]
    assert rules().meta_statuses == frozenset(RULES["meta_statuses"])


def test_the_body_cap_is_the_contracts(app):
    assert app.config["MAX_CONTENT_LENGTH"] == LIMITS["max_body_bytes"] == RULES["max_body_bytes"]


def test_the_lookup_limits_are_the_contracts():
    assert lookup_answer.NOTES_LIMIT == LIMITS["notes_limit"]
    assert lookup_answer.MESSAGES_LIMIT == LIMITS["messages_limit"]
    assert f"LIMIT {LIMITS['notes_limit']})" in store.LOOKUP_SQL
    assert f"LIMIT {LIMITS['messages_limit']})" in store.LOOKUP_SQL
    assert OPENAPI["components"]["schemas"]["Found"]["properties"]["notes"]["maxItems"] == LIMITS["notes_limit"]


def test_the_convex_paths_are_the_contracts():
    paths = LIMITS["convex_paths"]
    assert convex_client.LOOKUP_PATH == paths["lookup"]
    assert (ConvexAdmin.IMPORT_PATH, ConvexAdmin.CLEAR_PATH, ConvexAdmin.COUNTS_PATH) == (
        paths["import"], paths["import_clear"], paths["import_counts"])
    assert workspace_keys._KEYS_PATH == paths["keys"] and workspace_keys._BATCH == LIMITS["key_batch_size"]
    assert convex_admin._PATHS is limits().convex_paths


def test_the_webhook_constants_are_the_contracts(client):
    assert webhook_judge.META_STATUSES == frozenset(RULES["meta_statuses"])
    assert identity._patterns()[0].pattern == RULES["bsuid_pattern"]
    assert identity._patterns()[1].pattern == RULES["parent_bsuid_pattern"]
    shared = load_contract("formats.json")
    assert identity._uuid().pattern == shared["uuid"]
    assert schema_check.E164 == shared["e164"]
    assert api_keys.KEY_FORMAT.pattern == shared["api_key"]
    assert kapso_webhook._MAX_CHALLENGE == RULES["max_challenge_length"]
    longest = "c" * RULES["max_challenge_length"]
    assert client.get("/api/webhook/kapso", query_string={"hub.challenge": longest}).get_data(as_text=True) == longest
    too_long = client.get("/api/webhook/kapso", query_string={"hub.challenge": longest + "c"})
    assert too_long.status_code == 400


def _many_notes_dataset() -> dict:
    dataset = copy.deepcopy(load_contract("demo_data.json"))
    budi = next(c for c in dataset["contacts"] if c["phone"] == "+6281234567890")
    budi["notes"] = [{"content": f"note {i}", "created_at": f"2026-02-{i + 1:02d}T00:00:00.000Z"}
                     for i in range(LIMITS["notes_limit"] + 3)]
    return dataset


@pytest.mark.parametrize("route", ROUTES)
def test_a_lookup_answers_at_most_notes_limit_notes(client, auth, load, convex, route):
    dataset = _many_notes_dataset()
    load(dataset)
    convex.import_dataset(dataset)
    body = client.get(route, headers=auth, query_string={"phone": "+6281234567890", "workspace_id": WORKSPACE})
    notes = body.get_json()["notes"]
    newest = LIMITS["notes_limit"] + 2
    assert notes == [f"note {i}" for i in range(newest, newest - LIMITS["notes_limit"], -1)]


def _standin_lookup(standin, phone: str) -> dict:
    response = requests.get(standin.url + LIMITS["convex_paths"]["lookup"], headers={"x-api-key": API_KEY},
                            params={"phone": phone, "workspace_id": WORKSPACE}, timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("phone, found", [("+6281234567890", True), ("+6289999999999", False)])
def test_both_backends_answer_the_lookup_schema(client, auth, demo, convex, standin, phone, found):
    convex.import_dataset(demo)
    answers = {route: client.get(route, headers=auth, query_string={"phone": phone, "workspace_id": WORKSPACE})
               for route in ROUTES}
    bodies = {route: response.get_json() for route, response in answers.items()}
    bodies["stand-in " + LIMITS["convex_paths"]["lookup"]] = _standin_lookup(standin, phone)
    for where, body in bodies.items():
        errors = [error.message for error in LOOKUP_RESULT.iter_errors(body)]
        assert not errors, (where, errors)
        assert body["found"] is found, where
    if found:
        assert all(body == DEMO_ANSWER for body in bodies.values()), bodies


def test_the_schema_refuses_what_it_should():
    assert not LOOKUP_RESULT.is_valid({"found": True})
    assert not LOOKUP_RESULT.is_valid(dict(DEMO_ANSWER, notes=["n"] * (LIMITS["notes_limit"] + 1)))
    assert not LOOKUP_RESULT.is_valid({"found": False, "context": None, "extra": 1})
    assert LOOKUP_RESULT.is_valid(DEMO_ANSWER) and LOOKUP_RESULT.is_valid({"found": False, "context": None})
