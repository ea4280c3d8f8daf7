"""Faults injected for real: a PostgreSQL that is stopped, then started again."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from app import create_app
from services.embedded_pg import EmbeddedPostgres
from services.pg_store import load_dataset
from services.postgres import apply_schema
from tests.conftest import API_KEY, free_port, load_contract, sign

SCENARIO = load_contract("webhook_scenario.json")


@pytest.fixture()
def own_postgres(tmp_path):
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    server = EmbeddedPostgres(tmp_path / "pg", free_port())  # durable: it gets crashed
    server.start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        apply_schema(conn)
        load_dataset(conn, SCENARIO["dataset"])
    yield server
    server.stop("immediate")


def test_webhook_during_an_outage_answers_503_then_stores_the_retry_once(own_postgres):
    app = create_app({"DATABASE_URL": own_postgres.url, "CRM_API_KEY": API_KEY, "KAPSO_WEBHOOK_SECRET": "s",
                      "DATABASE_POOL_TIMEOUT": "1"})
    client = app.test_client()
    delivery = SCENARIO["deliveries"][0]
    raw = json.dumps(delivery["body"]).encode()
    headers = {**delivery["headers"], "X-Webhook-Signature": sign(raw, "s")}

    own_postgres.stop("immediate")
    started = time.monotonic()
    response = client.post("/api/webhook/kapso", data=raw, headers=headers)
    assert response.status_code == 503 and response.get_json() == {"error": "Backend unavailable"}
    assert response.headers["Retry-After"]
    assert time.monotonic() - started < 5

    own_postgres.start()
    deadline = time.monotonic() + 10
    while (response := client.post("/api/webhook/kapso", data=raw, headers=headers)).status_code == 503:
        assert time.monotonic() < deadline, "the service did not recover without a restart"
        time.sleep(0.2)
    assert response.get_json() == {"received": True, "stored": 1, "duplicates": 0, "ignored": 0}
    assert client.post("/api/webhook/kapso", data=raw, headers=headers).get_json()["duplicates"] == 1
    with psycopg.connect(own_postgres.url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    app.extensions["kontak.db"].close()
