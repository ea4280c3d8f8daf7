"""GET /metrics (docs/contract.md §15): who may read it, and that what it says is true across real
gunicorn workers, their deaths, a Convex outage and the follower; then a real Prometheus scrapes it."""

from __future__ import annotations

import base64
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from helpers import (
    API_KEY,
    BSUID,
    PHONE,
    WORKSPACE,
    delivery,
    load_contract,
    make_key,
    wait_until,
    workers,
)
from helpers_follow import run_cli
from tools.servers import free_port

LOOKUP = "/api/contacts/by-phone"
CONVEX_LOOKUP = "/api/contacts/by-phone-convex"
PARAMS = {"phone": "081234567890", "workspace_id": WORKSPACE}
KEY = {"x-api-key": API_KEY}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$|^req-")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape, by (name, sorted labels)."""
    response = requests.get(url + "/metrics", headers=headers or {"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """The sum of `name` over every label set holding `labels`."""
    return sum(value for (sample, found), value in samples.items()
               if sample == name and set(labels.items()) <= set(found))


def lookups(url: str, count: int, route: str = LOOKUP) -> None:
    """`count` lookups, each on a new connection (so the kernel spreads them over the workers)."""
    for _ in range(count):
        answer = requests.get(url + route, params=PARAMS, headers=KEY, timeout=10)
        assert answer.status_code == 200 and answer.json()["found"] is True, answer.text


# --- who may read it (Flask's test client: no PROMETHEUS_MULTIPROC_DIR, the process's own registry) ------


def test_only_the_deployment_key_reads_metrics(make_app, db, demo):
    client = make_app().test_client()
    _, workspace_key = make_key(db)
    refused = [{}, {"x-api-key": workspace_key}, {"Authorization": f"Bearer {workspace_key}"},
               _basic("operator", workspace_key), _basic("operator", "wrong"), _basic(API_KEY, ""),
               {"Authorization": "Basic !!not-base64"}, {"Authorization": f"Token {API_KEY}"}]
    for headers in refused:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}, headers
    for headers in (KEY, {"Authorization": f"Bearer {API_KEY}"}, _basic("anyone", API_KEY), _basic("", API_KEY)):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 200, headers
        assert response.content_type.startswith("text/plain") and b"# TYPE" in response.data
    assert client.post("/metrics", headers=KEY).status_code == 405
    unconfigured = make_app(CRM_API_KEY=None).test_client().get("/metrics", headers=KEY)
    assert unconfigured.status_code == 500 and unconfigured.get_json() == {"error": "Service not configured"}


def test_metrics_off_is_404_and_records_nothing(make_app, demo):
    off = make_app(METRICS="off").test_client()  # the last app made sets the process's flag
    for headers in ({}, KEY):
        response = off.get("/metrics", headers=headers)
        assert response.status_code == 404 and response.get_json() == {"error": "Not found"}
    before = _requests_counted()
    assert off.get(LOOKUP, query_string=PARAMS, headers=KEY).status_code == 200
    assert _requests_counted() == before


def _requests_counted() -> float:
    return sum(s.value for family in REGISTRY.collect() if family.name == "kontak_request_duration_seconds"
               for s in family.samples if s.name.endswith("_count"))


def test_webhook_events_are_counted_by_outcome(make_app, demo):
    client = make_app().test_client()
    body, headers = delivery()  # one event of the demo workspace, one of a phone number id nobody has

    def counted(outcome: str, reason: str = "-") -> float:
        value = REGISTRY.get_sample_value("kontak_webhook_events_total", {"outcome": outcome, "reason": reason})
        return value or 0.0

    before = {k: counted(*k) for k in (("stored",), ("duplicate",), ("ignored", "unknown_workspace"))}
    for _ in range(2):
        response = client.post("/api/webhook/kapso", data=body, headers={**headers, **KEY})
        assert response.status_code == 200, response.get_json()
    assert counted("stored") - before[("stored",)] == 1
    assert counted("duplicate") - before[("duplicate",)] == 1
    assert counted("ignored", "unknown_workspace") - before[("ignored", "unknown_workspace")] == 2


# --- a real gunicorn: two workers, multiprocess mode --------------------------------------------------------


def _replace_every_worker(server) -> None:
    """SIGKILL each worker; gunicorn starts new ones (and marks the dead ones in its child_exit)."""
    old = workers(server)
    for pid in old:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    wait_until(lambda: len(workers(server) - old) == server.workers and not workers(server) & old, 30,
               "gunicorn to replace both killed workers")
    wait_until(lambda: requests.get(server.url + "/healthz", timeout=5).status_code == 200, 30, "the new workers")


def test_request_counts_add_up_across_workers_and_their_deaths(gunicorn, demo):
    server = gunicorn()
    lookups(server.url, 30)
    assert total(scrape(server.url), "kontak_request_duration_seconds_count") == 30
    assert total(scrape(server.url), "kontak_request_duration_seconds_count", route=LOOKUP, backend="supabase",
                 status_class="2xx") == 30, "scrapes are not counted, and the labels are the contract's"
    _replace_every_worker(server)  # every request so far was served by a worker now dead
    lookups(server.url, 12)
    samples = scrape(server.url)
    assert total(samples, "kontak_request_duration_seconds_count") == 42
    assert total(samples, "kontak_backend_call_duration_seconds_count", backend="supabase") >= 42
    assert "Traceback" not in server.log()


def test_no_label_holds_a_phone_bsuid_key_workspace_or_request_id(gunicorn, demo):
    server = gunicorn()
    bsuid = "ID.13491208655302741918"
    asked = [(LOOKUP, {"phone": "+62 812-3456-7890", "workspace_id": WORKSPACE}),
             (LOOKUP, {"bsuid": bsuid, "workspace_id": WORKSPACE}), (LOOKUP, {"phone": "not a phone"}),
             (CONVEX_LOOKUP, PARAMS), ("/api/contacts/+6281234567890", {}), (f"/api/{WORKSPACE}/{bsuid}", {})]
    for path, params in asked:
        requests.get(server.url + path, params=params, timeout=10,
                     headers={**KEY, "X-Request-ID": "req-6281234567890"})
    requests.get(server.url + LOOKUP, params=PARAMS, headers={"x-api-key": "a-wrong-key-6281234567890"}, timeout=10)
    samples = scrape(server.url)
    assert total(samples, "kontak_request_duration_seconds_count") == len(asked) + 1
    assert total(samples, "kontak_request_duration_seconds_count", route="-", status_class="4xx") == 2
    for (name, labels), _ in samples.items():
        for label, value in labels:
            personal = (PHONE.search(value) or BSUID.search(value) or UUID.search(value) or REQUEST_ID.search(value)
                        or API_KEY in value or "6281234567890" in value)
            assert not personal, (name, label, value)


def test_breaker_gauge_is_one_while_convex_is_down(gunicorn, demo, own_standin):
    standin = own_standin(load_contract("demo_data.json"))
    server = gunicorn(CONVEX_SITE_URL=standin.url, BREAKER_FAILURES="1", BREAKER_PAUSE_SECONDS="300")
    lookups(server.url, 4, route=CONVEX_LOOKUP)
    assert total(scrape(server.url), "kontak_breaker_open", backend="convex") == 0
    standin.stop()

    def opened() -> bool:
        requests.get(server.url + CONVEX_LOOKUP, params=PARAMS, headers=KEY, timeout=10)
        return total(scrape(server.url), "kontak_breaker_open", backend="convex") == 1

    wait_until(opened, 20, "kontak_breaker_open{backend=convex} to be 1")
    samples = scrape(server.url)
    assert total(samples, "kontak_breaker_open", backend="supabase") == 0  # PostgreSQL's stays closed
    assert total(samples, "kontak_request_duration_seconds_count", route=CONVEX_LOOKUP, status_class="5xx") >= 1


def _follow_gauges(url: str) -> set[str]:
    return {name for name, _ in scrape(url) if name.startswith("kontak_follow_")}


def test_follow_gauges_only_while_capture_is_on(own_postgres, own_standin, gunicorn, follower_process):
    postgres, standin = own_postgres(load_contract("demo_data.json")), own_standin()
    env = {"DATABASE_URL": postgres.url, "CRM_API_KEY": API_KEY, "CONVEX_SITE_URL": standin.url}
    server = gunicorn(**env)
    assert _follow_gauges(server.url) == set()
    follower = follower_process(env).start()
    wait_until(lambda: _follow_gauges(server.url) == {"kontak_follow_lag_seconds", "kontak_follow_backlog"}, 60,
               f"the follow gauges once the follower switched capture on (log: {follower.log()[-1500:]})")
    assert total(scrape(server.url), "kontak_follow_backlog") >= 0
    postgres.stop("immediate")  # a down PostgreSQL: the scrape still answers, without the two gauges
    response = requests.get(server.url + "/metrics", headers=KEY, timeout=5)
    assert response.status_code == 200 and "kontak_follow_" not in response.text
    postgres.start()
    follower.stop()
    result = run_cli(env, "sync-convex", "--capture", "off")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: _follow_gauges(server.url) == set(), 20, "the follow gauges to go with capture")


# --- a real Prometheus ---------------------------------------------------------------------------------------


@pytest.fixture()
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """`prometheus(target_port)`: Debian's Prometheus scraping Kontak's /metrics every second with the key as a
    bearer token; its base URL. Always stopped at teardown."""
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if binary is None:
        pytest.fail("prometheus is not installed: `make test` installs Debian's prometheus")
    started: list[subprocess.Popen] = []

    def start(target_port: int) -> str:
        port, config = free_port(), tmp_path / "prometheus.yml"
        config.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kontak
    authorization:
      type: Bearer
      credentials: {API_KEY}
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
        log = open(tmp_path / "prometheus.log", "wb")
        started.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log))
        log.close()
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(base: str, promql: str) -> float | None:
    try:
        answer = requests.get(base + "/api/v1/query", params={"query": promql}, timeout=5).json()
    except (requests.ConnectionError, ValueError):
        return None  # not listening yet
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


def test_a_real_prometheus_scrapes_the_worker_set(gunicorn, demo, prometheus, tmp_path):
    server = gunicorn()
    base = prometheus(server.port)
    wait_until(lambda: _query(base, 'up{job="kontak"}') == 1, 60,
               f"Prometheus to scrape Kontak (log: {(tmp_path / 'prometheus.log').read_text()[-1500:]})")
    lookups(server.url, 25)
    wait_until(lambda: _query(base, "sum(kontak_request_duration_seconds_count)") == 25, 30,
               "Prometheus to see the 25 lookups")
    assert _query(base, 'sum(kontak_request_duration_seconds_bucket{le="+Inf", status_class="2xx"})') == 25
