"""The Convex route when the stand-in is down or slow: 503 / 504 in bounded time, then recovery."""

from __future__ import annotations

import time

from helpers import API_KEY, WORKSPACE, load_contract
from services.convex.admin import ConvexAdmin

PARAMS = {"phone": "081234567890", "workspace_id": WORKSPACE}
URL = "/api/contacts/by-phone-convex"


def timed_get(client):
    started = time.monotonic()
    response = client.get(URL, query_string=PARAMS, headers={"x-api-key": API_KEY})
    return response, time.monotonic() - started


def test_stopped_standin_is_503_then_recovers_without_restart(make_app, own_standin):
    standin = own_standin(load_contract("demo_data.json"))
    client = make_app(CONVEX_SITE_URL=standin.url, CONVEX_TIMEOUT="1").test_client()
    assert timed_get(client)[0].get_json()["found"] is True

    standin.stop()
    response, elapsed = timed_get(client)
    assert response.status_code == 503 and response.get_json() == {"error": "Backend unavailable"}
    assert response.headers["Retry-After"] and elapsed < 1 + 1

    standin.start()
    ConvexAdmin(standin.url, API_KEY).import_dataset(load_contract("demo_data.json"))
    response, _ = timed_get(client)
    assert response.status_code == 200 and response.get_json()["found"] is True


def test_slow_convex_is_504_within_the_timeout(make_app, standin, convex, slowed_proxy):
    convex.import_dataset(load_contract("demo_data.json"))
    proxy = slowed_proxy(standin.url, 1.0)
    slow = make_app(CONVEX_SITE_URL=f"http://127.0.0.1:{proxy.port}", CONVEX_TIMEOUT="0.3")
    response, elapsed = timed_get(slow.test_client())
    assert response.status_code == 504 and response.get_json() == {"error": "Backend timeout"}
    assert elapsed < 0.3 + 1, "the worker is not held beyond the timeout"
    patient = make_app(CONVEX_SITE_URL=f"http://127.0.0.1:{proxy.port}", CONVEX_TIMEOUT="5")
    response, elapsed = timed_get(patient.test_client())
    assert response.status_code == 200 and elapsed >= 2.0, "the proxy really delays each way"


def test_unexpected_convex_answer_is_502(make_app, standin):
    # A URL where no Convex HTTP action lives: the answer is a JSON 404, not the lookup.
    app = make_app(CONVEX_SITE_URL=f"{standin.url}/not-convex")
    response, _ = timed_get(app.test_client())
    assert response.status_code == 502 and response.get_json() == {"error": "Backend error"}
