"""The request path never changes the schema: PostgreSQL's own statement log over lookups and webhooks."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import psycopg
import requests

from helpers import API_KEY, WORKSPACE, load_contract, sign, wait_until
from services.postgres import migrations
from services.postgres.dataset import load_dataset
from tools.servers import GunicornServer

SECRET = "ddl-probe-secret"
SCENARIO = load_contract("webhook_scenario.json")
# One log entry per timestamped line, with its continuation lines (multi-line SQL).
ENTRY = re.compile(r"^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.M)
STATEMENT = re.compile(r"^[^\n]*? LOG:\s+(statement|execute [^:]*)(?=:)")
DDL = re.compile(r"\b(CREATE|ALTER|DROP|TRUNCATE|COMMENT\s+ON|GRANT|REVOKE)\b", re.I)


def mark(url: str, label: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SELECT '{label}'")


def between(log_file: Path, start: str, end: str) -> str:
    """The log between two marks, once the end mark is in it (the server's log is written asynchronously)."""
    wait_until(lambda: end in log_file.read_text(errors="replace"), 5, "the end mark in PostgreSQL's log")
    text = log_file.read_text(errors="replace")
    return text[text.index(start):text.index(end)]


def test_lookups_and_webhooks_run_no_ddl(postgres, new_database, tmp_path):
    url = new_database("ddl_probe")
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.upgrade(conn)
        load_dataset(conn, load_contract("demo_data.json"))
        load_dataset(conn, SCENARIO["dataset"])
        conn.execute("ALTER DATABASE ddl_probe SET log_statement = 'all'")  # this database's sessions only
    run = uuid.uuid4().hex
    mark(url, f"ddl-probe-start-{run}")
    # Fresh workers: their first connections are the ones that used to run the schema.
    server = GunicornServer({"DATABASE_URL": url, "CRM_API_KEY": API_KEY, "KAPSO_WEBHOOK_SECRET": SECRET},
                            tmp_path / "gunicorn.log")
    try:
        session = requests.Session()
        for delivery in SCENARIO["deliveries"]:
            raw = json.dumps(delivery["body"]).encode()
            headers = {**delivery["headers"], "Content-Type": "application/json",
                       "X-Webhook-Signature": sign(raw, SECRET)}
            assert session.post(server.url + "/api/webhook/kapso", data=raw, headers=headers).status_code == 200
        for lookup in SCENARIO["lookups"] * 5 + [{"phone": "081234567890", "workspace_id": WORKSPACE}] * 20:
            answer = session.get(server.url + "/api/contacts/by-phone", headers={"x-api-key": API_KEY},
                                 params={"phone": lookup["phone"], "workspace_id": lookup["workspace_id"]})
            assert answer.status_code == 200
        assert session.get(server.url + "/readyz").status_code in (200, 503)  # Convex is not configured here
    finally:
        server.stop()
    mark(url, f"ddl-probe-end-{run}")
    log = between(postgres.log_file, f"ddl-probe-start-{run}", f"ddl-probe-end-{run}")
    statements = [entry[match.end() + 1:] for entry in ENTRY.split(log) if (match := STATEMENT.match(entry))]
    assert any("kontak_ingest(" in s for s in statements), "the log holds the webhooks"
    assert any("LEFT JOIN conversations cv" in s for s in statements), "the log holds the lookups"
    assert any("kontak_schema_migrations" in s for s in statements), "the version check is a read"
    ddl = [s for s in statements if DDL.search(s)]
    assert ddl == []
