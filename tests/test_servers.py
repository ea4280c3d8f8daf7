"""The app served for real: gunicorn over HTTP, and PostgreSQL through PgBouncer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from helpers import API_KEY, DEMO_NAME, WORKSPACE, load_contract, timing_lines_in, wait_until
from helpers import TIMING_LINE as LINE

PHONES = ["+6281234567890", "6281234567890", "081234567890", "+62 812-3456-7890"]


def test_gunicorn_serves_the_lookup_with_one_line_per_request(gunicorn, demo):
    server = gunicorn()
    with requests.Session() as session:
        for phone in PHONES:
            response = session.get(server.url + "/api/contacts/by-phone", headers={"x-api-key": API_KEY},
                                   params={"phone": phone, "workspace_id": WORKSPACE}, timeout=5)
            assert response.status_code == 200
            assert response.json()["contact"]["name"] == DEMO_NAME
        response = session.get(server.url + "/api/contacts/by-phone", params={"phone": "1"}, timeout=5)
        assert response.status_code == 401 and response.json() == {"error": "Unauthorized"}
        response = session.get(server.url + "/api/contacts/by-phone", headers={"x-api-key": API_KEY},
                               params={"phone": "081234567890", "workspace_id": "x"}, timeout=5)
        assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    wait_until(lambda: len(timing_lines_in(server.log())) >= 6, 5, "six timing lines in gunicorn's log")
    log = server.log()
    lines = [line for line in log.splitlines() if line.startswith("timing ")]
    assert len(lines) == 6 and all(LINE.fullmatch(line) for line in lines), lines
    assert sum("queries=1" in line for line in lines) == 4
    assert API_KEY not in log and "81234567890" not in log and "Traceback" not in log


def test_gunicorn_refuses_a_bad_setting_with_one_clear_line(env, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=30,
        env={**os.environ, **env, "DATABASE_POOL_MODE": "sometimes"},
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "kontak: configuration error: DATABASE_POOL_MODE must be one of session, transaction, got 'sometimes'"]


def test_transaction_pooler_with_many_workers(gunicorn, demo, pgbouncer):
    """PgBouncer in transaction mode (Debian 12 ships 1.18: no prepared-statement support):
    server-side prepared statements from Kontak would fail here."""
    server = gunicorn(DATABASE_URL=pgbouncer, DATABASE_POOL_MODE="transaction", DATABASE_POOL_MAX_SIZE="4")
    expected = None
    with requests.Session() as session:
        for i in range(40):
            response = session.get(server.url + "/api/contacts/by-phone", headers={"x-api-key": API_KEY},
                                   params={"phone": PHONES[i % 4], "workspace_id": WORKSPACE}, timeout=5)
            assert response.status_code == 200, response.text
            expected = expected or response.json()
            assert response.json() == expected
    assert expected["contact"]["name"] == load_contract("demo_data.json")["contacts"][0]["name"]
    assert not re.search(r"prepared statement .* does not exist", server.log())


def test_gunicorns_master_imports_no_backend_driver_before_a_worker_patches(tmp_path):
    """gunicorn's master reads gunicorn.conf.py and the worker class before forking; a gevent worker
    patches only afterwards. psycopg picks its wait function when imported (and urllib3 its sockets):
    psycopg would then block, and one lookup waiting on PostgreSQL would stall every other request of its worker."""
    probe = ("import runpy, sys; import services.gunicorn_worker, services.access_log; "
             "runpy.run_path('gunicorn.conf.py'); "
             "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'urllib3') if m in sys.modules))")
    env = {**os.environ, "DATABASE_URL": "postgresql://kontak@127.0.0.1:5432/kontak", "CRM_API_KEY": "k",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # no server runs to remove a directory it would make
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
