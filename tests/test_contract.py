"""The published contract: the served OpenAPI document, and schemathesis against the live app."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from blueprints.openapi import OPENAPI_FILE
from helpers import API_KEY

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def test_committed_document_is_valid_openapi_3_1():
    document = json.loads(OPENAPI_FILE.read_text())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_served_document_equals_the_committed_file(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == json.loads(OPENAPI_FILE.read_text())


def test_every_route_is_documented(app):
    documented = set(json.loads(OPENAPI_FILE.read_text())["paths"])
    served = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert served == documented


@pytest.fixture(scope="module")
def operations(live):
    api = schemathesis.openapi.from_url(live.url + "/openapi.json")
    return [result.ok() for result in api.get_all_operations()]


FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)


# schemathesis's own pytest plugin does not work with pytest 9 yet, so each
# operation's strategy is run through hypothesis directly.
@pytest.mark.parametrize("headers", [{"x-api-key": API_KEY}, {}], ids=["valid key", "no key"])
def test_fuzzed_requests_conform(operations, live, headers):
    # every documented operation but /openapi.json itself, which schemathesis skips
    paths = json.loads(OPENAPI_FILE.read_text())["paths"]
    assert len(operations) == sum(method in ("get", "post") for path, item in paths.items()
                                  if path != "/openapi.json" for method in item)
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def call(case):
            calls.append(case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS).status_code)

        call()
    assert len(calls) >= 6 * 10, "hypothesis ran the operations"
