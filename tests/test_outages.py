"""Faults injected for real: a PostgreSQL that is stopped, then started again."""

from __future__ import annotations

import json
import time

import psycopg

from helpers import load_contract, sign, wait_until

SCENARIO = load_contract("webhook_scenario.json")


def test_webhook_during_an_outage_answers_503_then_stores_the_retry_once(own_postgres, make_app):
    pg = own_postgres(SCENARIO["dataset"])
    client = make_app(DATABASE_URL=pg.url, CONVEX_SITE_URL=None, KAPSO_WEBHOOK_SECRET="s",
                      DATABASE_POOL_TIMEOUT="1").test_client()
    delivery = SCENARIO["deliveries"][0]
    raw = json.dumps(delivery["body"]).encode()
    headers = {**delivery["headers"], "X-Webhook-Signature": sign(raw, "s")}

    pg.stop("immediate")
    started = time.monotonic()
    response = client.post("/api/webhook/kapso", data=raw, headers=headers)
    assert response.status_code == 503 and response.get_json() == {"error": "Backend unavailable"}
    assert response.headers["Retry-After"]
    assert time.monotonic() - started < 5

    pg.start()
    answers = []

    def retry_accepted() -> bool:
        answers.append(client.post("/api/webhook/kapso", data=raw, headers=headers))
        return answers[-1].status_code != 503

    wait_until(retry_accepted, 10, "recovery without a restart")
    response = answers[-1]
    assert response.get_json() == {"received": True, "stored": 1, "duplicates": 0, "ignored": 0}
    assert client.post("/api/webhook/kapso", data=raw, headers=headers).get_json()["duplicates"] == 1
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
