"""The verdict of docs/contract.md §15: `flask --app app verdict LOG` on shadow lines whose answer is known,
log-summary's shadow section, and `GET /verdict` (its key, its page, in a real browser against a real
gunicorn doing shadow lookups)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from commands.compare.cli import log_summary_command
from commands.compare.latency import ratio_with_ci
from commands.verdict.cli import verdict_command
from commands.verdict.lines import parse_shadow_line
from commands.verdict.stats import paired_ratio_with_ci
from helpers import API_KEY, CONVEX_ROUTE, PG_ROUTE, WORKSPACE, load_contract, wait_until
from helpers_verdict import basic, chromium, independent_log, paired_log, shadow_line
from services.metrics import SECONDS_BUCKETS
from services.verdict_html import CSS_HASH, render
from services.verdict_page import page_model, read_figures

DEMO = load_contract("demo_data.json")
VERDICT = re.compile(r"On (\d+) shadowed lookups Convex is [\d.]+× (?:slower|faster) than Supabase at p50 "
                     r"\(95% CI [\d.]+–[\d.]+\)")
NO_VERDICT = "No verdict: the interval includes 1"


def run_verdict(tmp_path: Path, lines: list[str]) -> tuple[object, dict]:
    log = tmp_path / "gunicorn.log"
    log.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(verdict_command, [str(log), "--chart", str(tmp_path / "v.png"),
                                                  "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    return result, json.loads((tmp_path / "v.json").read_text())


# --- the command -----------------------------------------------------------------------------------------------


def test_convex_exactly_twice_as_slow_is_a_ratio_of_two_with_a_verdict(tmp_path):
    result, report = run_verdict(tmp_path, paired_log(400, 2.0))
    for label in ("p50", "p95", "p99"):
        ratio = report["ratio_convex_over_supabase"][label]
        assert ratio["ratio"] == pytest.approx(2.0, abs=0.02) and ratio["ci_low"] > 1, (label, ratio)
    assert report["pairs"] == 400 and report["by_primary"] == {"supabase": 200, "convex": 200}
    assert report["backends"]["convex"]["p50"] == pytest.approx(2 * report["backends"]["supabase"]["p50"], rel=0.01)
    assert VERDICT.search(result.output)[1] == "400"
    assert "Convex is 2.00× slower than Supabase at p50" in result.output
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_equal_backends_give_no_verdict(tmp_path):
    result, report = run_verdict(tmp_path, independent_log(400))
    p50 = report["ratio_convex_over_supabase"]["p50"]
    assert p50["ci_low"] < 1 < p50["ci_high"]
    assert report["verdict"] == NO_VERDICT and NO_VERDICT in result.output and not VERDICT.search(result.output)


def test_too_few_pairs_give_no_verdict_whatever_the_interval(tmp_path):
    _, report = run_verdict(tmp_path, paired_log(10, 3.0))
    assert report["ratio_convex_over_supabase"]["p50"]["ci_low"] > 1
    assert report["verdict"].startswith("No verdict: 10 paired lookups")


def test_the_interval_is_paired(tmp_path):
    """The same requests on both sides: resampling pairs keeps what made a request slow on both, so the
    paired interval is far narrower than one that resamples the two sides apart."""
    _, report = run_verdict(tmp_path, paired_log(300, 1.5))
    times = report["times_ms"]
    paired = paired_ratio_with_ci(times["convex"], times["supabase"], 50)
    unpaired = ratio_with_ci(times["convex"], times["supabase"], 50)
    assert paired == report["ratio_convex_over_supabase"]["p50"]
    assert paired["ci_high"] - paired["ci_low"] < (unpaired["ci_high"] - unpaired["ci_low"]) / 5


def test_mismatch_lag_error_and_dropped_are_counted_apart(tmp_path):
    results = {**dict.fromkeys(range(0, 4), "mismatch"), **dict.fromkeys(range(4, 10), "lag")}
    lines = paired_log(200, 2.0, results=results)
    lines += [shadow_line("convex", 3.0, 2000.0, result="error", shadow_status="504", request_id=f"x{i}")
              for i in range(5)]
    lines += [shadow_line("supabase", 1.0, "-", result="dropped", shadow_status="-", request_id="d1")]
    lines += ["shadow-mismatch request_id=v0 primary=supabase shadow=convex fields=notes,contact.lead_status",
              "shadow-mismatch request_id=v1 primary=convex shadow=supabase fields=notes",
              "shadow-mismatch request_id=v2 primary=supabase shadow=convex fields=-"]
    result, report = run_verdict(tmp_path, lines)
    outcomes = report["outcomes"]
    assert {k: outcomes[k] for k in ("compared", "match", "mismatch", "lag", "error", "dropped")} == {
        "compared": 200, "match": 190, "mismatch": 4, "lag": 6, "error": 5, "dropped": 1}
    assert outcomes["mismatch_rate"] == pytest.approx(4 / 200) and outcomes["lag_rate"] == pytest.approx(6 / 200)
    assert report["pairs"] == 200  # errors and drops have no second time: never in the percentiles
    assert report["mismatch_fields"] == {"notes": 2, "contact.lead_status": 1}
    assert "mismatch rate 2.00%" in result.output and "lag rate 3.00%" in result.output
    assert "error 5, dropped 1" in result.output


HOSTILE = [
    "Traceback: ValueError: shadow route=/x primary=supabase shadow=convex status=200 shadow_status=200 "
    "primary_ms=1.00 shadow_ms=9.00 result=match phone=- bsuid=- request_id=a and then more",
    shadow_line("supabase", 1.0, 2.0).replace("shadow=convex", "shadow=supabase"),  # one backend twice
    shadow_line("supabase", 1.0, 2.0).replace("result=match", "result=great"),
    shadow_line("supabase", 1.0, 2.0).replace("primary_ms=1.00", "primary_ms=nan"),
    shadow_line("supabase", 1.0, 2.0).replace("primary_ms=1.00", "primary_ms=-1.00"),
    shadow_line("supabase", 1.0, 2.0).replace("primary_ms=1.00", "primary_ms=1e308"),
    shadow_line("supabase", 1.0, 2.0).replace("request_id=r", "request_id=<script>"),
    shadow_line("supabase", 1.0, 2.0).replace("route=/api/contacts/by-phone", "route=/" + "a" * 5000),
    "xshadow route=/api/contacts/by-phone primary=supabase shadow=convex status=200 shadow_status=200 "
    "primary_ms=1.00 shadow_ms=2.00 result=match phone=- bsuid=- request_id=z",
    "shadow-mismatch request_id=q primary=convex shadow=convex fields=notes",
    "\x00\xff shadow \u202e route=",
    "",
]


def test_hostile_lines_are_ignored(tmp_path):
    assert all(parse_shadow_line(line) is None for line in HOSTILE)
    stamped = "2026-12-06T10:00:00Z " + shadow_line("convex", 2.0, 1.0, request_id="ok")
    assert parse_shadow_line(stamped).ms_of("supabase") == 1.0  # a time stamp in front is the log's, fine
    _, report = run_verdict(tmp_path, HOSTILE + paired_log(50, 2.0))
    assert report["outcomes"]["lines"] == 50 and report["mismatch_fields"] == {}


def test_a_missing_file_or_a_log_without_shadow_lines_is_one_line_and_exit_1(tmp_path):
    for path, reason in ((tmp_path / "absent.log", "No such file or directory"), (tmp_path, "Is a directory")):
        result = CliRunner().invoke(verdict_command, [str(path)])
        assert result.exit_code == 1 and result.output == f"verdict: cannot read {path}: {reason}\n"
    log = tmp_path / "plain.log"
    log.write_text("timing route=/api/contacts/by-phone backend=supabase method=GET status=200 found=true "
                   "total_ms=1.00 backend_ms=0.50 queries=1 phone=- bsuid=- request_id=a\n" + "\n".join(HOSTILE))
    result = CliRunner().invoke(verdict_command, [str(log)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "no shadow lines" in result.output


def test_log_summary_reports_both_backends_on_the_shadowed_requests():
    log = "\n".join(paired_log(100, 2.0, results={0: "lag"}) + HOSTILE) + "\n"
    result = CliRunner().invoke(log_summary_command, [], input=log)
    assert result.exit_code == 0, result.output
    assert "shadowed requests, both backends on the same lookups" in result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
            if line.startswith(("convex ", "supabase "))}
    assert rows["convex"][0] == rows["supabase"][0] == "100"
    assert float(rows["convex"][1]) == pytest.approx(2 * float(rows["supabase"][1]), rel=0.02)
    assert "match 99, mismatch 0, lag 1, error 0, dropped 0" in result.output


# --- the page's figures, from a registry of the metrics' own definitions -----------------------------------------



def live_registry(convex_factor: float, count: int = 400, seed: int = 1) -> CollectorRegistry:
    """A registry holding §15's two metrics (same names, labels and buckets) with known distributions."""
    registry = CollectorRegistry()
    times = Histogram("kontak_shadow_backend_seconds", "t", ("backend",), buckets=SECONDS_BUCKETS, registry=registry)
    results = Counter("kontak_shadow_comparisons_total", "c", ("primary", "shadow", "result"), registry=registry)
    rng = np.random.default_rng(seed)
    for i, seconds in enumerate(rng.lognormal(np.log(0.004), 0.5, count)):
        times.labels("supabase").observe(seconds)
        times.labels("convex").observe(seconds * convex_factor if convex_factor else rng.lognormal(np.log(0.004), 0.5))
        results.labels("supabase", "convex", "lag" if i < 8 else "mismatch" if i < 10 else "match").inc()
    results.labels("convex", "supabase", "dropped").inc(3)
    return registry


def test_the_buckets_give_the_ratio_and_its_interval():
    model = page_model(read_figures(live_registry(2.0).collect()))
    assert model["pairs"] == 400 and model["follow"] is None
    # Interpolated inside buckets, so near, not at, the true 2.
    assert model["ratios"]["p50"]["ratio"] == pytest.approx(2.0, rel=0.15) and model["ratios"]["p50"]["ci_low"] > 1
    assert VERDICT.fullmatch(model["verdict"])
    assert model["results"] == {"match": 390, "mismatch": 2, "lag": 8, "error": 0, "dropped": 3}
    assert model["mismatch_rate"] == pytest.approx(2 / 400) and model["lag_rate"] == pytest.approx(8 / 400)
    registry = live_registry(2.0)
    Gauge("kontak_follow_lag_seconds", "l", registry=registry).set(0.25)
    Gauge("kontak_follow_backlog", "b", registry=registry).set(12)
    followed = page_model(read_figures(registry.collect()))
    assert followed["follow"] == {"lag_s": 0.25, "backlog": 12}
    assert "250 ms behind, 12 changes waiting" in render(followed, standin=False)
    assert "no follower" in render(model, standin=False)
    same = page_model(read_figures(live_registry(0.0).collect()))
    assert same["ratios"]["p50"]["ci_low"] < 1 < same["ratios"]["p50"]["ci_high"] and same["verdict"] == NO_VERDICT


# --- GET /verdict ---------------------------------------------------------------------------------------------


def test_verdict_needs_crm_api_key_and_a_browser_is_asked_for_it(client):
    for headers in ({}, basic("wrong"), {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"},
                    {"Authorization": "Basic !!!"}, basic("", user=API_KEY)):  # the key as the user name: no
        response = client.get("/verdict", headers=headers)
        assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="Kontak verdict"')
    for headers in (basic(API_KEY), basic(API_KEY, user=""), {"Authorization": f"Bearer {API_KEY}"},
                    {"x-api-key": API_KEY}):
        response = client.get("/verdict", headers=headers)
        assert response.status_code == 200 and response.mimetype == "text/html", headers
        assert "WWW-Authenticate" not in response.headers


def test_without_crm_api_key_the_page_is_not_configured(make_app):
    response = make_app(CRM_API_KEY=None).test_client().get("/verdict", headers=basic(API_KEY))
    assert response.status_code == 500 and response.get_json() == {"error": "Service not configured"}


def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower() and "javascript:" not in page.lower()
    assert not re.search(r"https?://|\b(?:src|href|srcset|action)=|@import|url\(", page, re.I)
    assert page.count("<style>") == 1


def test_the_page_is_self_contained(client):
    assert_self_contained(render(page_model(read_figures(live_registry(2.0).collect())), standin=True))
    response = client.get("/verdict", headers=basic(API_KEY))
    page = response.get_data(as_text=True)
    assert_self_contained(page)
    # Its own policy, replacing the JSON API's: the one style block by its hash, nothing else.
    assert response.headers.getlist("Content-Security-Policy") == [
        f"default-src 'none'; style-src '{CSS_HASH}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"]
    assert response.headers["Cache-Control"] == "no-store" and "X-Request-ID" not in response.headers
    assert client.get("/healthz").headers["Content-Security-Policy"].startswith("default-src 'none'; frame")


def test_with_metrics_off_the_page_says_so(make_app):
    response = make_app(METRICS="off").test_client().get("/verdict", headers=basic(API_KEY))
    assert response.status_code == 200 and "Metrics are off (METRICS=off)" in response.get_data(as_text=True)


# --- a real browser on a real gunicorn doing shadow lookups --------------------------------------------------------


def pairs_shown(url: str) -> int:
    page = requests.get(url + "/verdict", headers=basic(API_KEY), timeout=10).text
    return int(re.search(r'data-pairs="(\d+)"', page)[1])


def test_chromium_opens_the_page_with_the_key_in_the_url(gunicorn, demo, convex, tmp_path):
    convex.import_dataset(DEMO)
    server = gunicorn(SHADOW_SAMPLE="1")
    phones = [DEMO["contacts"][0]["phone"], DEMO["contacts"][1]["phone"], "+6281399998888"]
    for n in range(40):
        for route in (PG_ROUTE, CONVEX_ROUTE):
            answer = requests.get(server.url + route, params={"phone": phones[n % 3], "workspace_id": WORKSPACE},
                                  headers={"x-api-key": API_KEY}, timeout=20)
            assert answer.status_code == 200
    wait_until(lambda: pairs_shown(server.url) >= 80, 30, "the 80 shadow pairs in the metrics of both workers")
    page_url = f"http://operator:{API_KEY}@127.0.0.1:{server.port}/verdict"
    dom = chromium(tmp_path / "profile", "--dump-dom", page_url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "Unauthorized" not in html, "Chromium sent no Basic credentials from the URL"
    bars = {}
    for backend in ("supabase", "convex"):
        assert len(re.findall(rf'<svg [^>]*data-backend="{backend}"', html)) == 1
        bars[backend] = re.search(rf'<g class="bars" data-backend="{backend}">(.*?)</g>', html, re.S)[1].count("<rect")
        assert f'<g class="axis" data-backend="{backend}">' in html
    # A bar per bucket, up to the one after the last used (so at least two), the same buckets for both.
    assert bars["supabase"] == bars["convex"] >= 2, bars
    sentence = re.search(r'id="verdict" data-pairs="(\d+)">([^<]*)<', html)
    assert int(sentence[1]) >= 80
    assert VERDICT.fullmatch(sentence[2]) or sentence[2] == NO_VERDICT, sentence[2]
    shot = tmp_path / "verdict.png"
    result = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,900", page_url)
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result.stderr[-2000:]
    import matplotlib.image
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    # The inline style applied (its hash let through): the page's #fafafa background, not the default white.
    assert tuple(pixels[5, 5]) == (250, 250, 250)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert (62, 207, 142) in colours and (238, 52, 47) in colours  # both distributions' bars drawn
