"""docs/contract.md §6: one line per /api request, masked phone, matching Server-Timing."""

import re

from helpers import API_KEY, WORKSPACE
from helpers import TIMING_LINE as LINE


def test_found_lookup_line(client, auth, demo, timing_lines):
    response = client.get("/api/contacts/by-phone", headers={**auth, "X-Request-ID": "abc.123-x_y"},
                          query_string={"phone": "+62 812-3456-7890", "workspace_id": WORKSPACE})
    [line] = timing_lines()
    match = LINE.fullmatch(line)
    assert match, line
    assert match["route"] == "/api/contacts/by-phone" and match["backend"] == "supabase"
    assert (match["status"], match["found"], match["queries"]) == ("200", "true", "1")
    assert match["phone"] == "+62812****890" and match["rid"] == "abc.123-x_y"
    assert response.headers["X-Request-ID"] == "abc.123-x_y"
    assert response.headers["Server-Timing"] == (
        f"backend;dur={match['backend_ms']}, app;dur={match['total']}")
    assert float(match["backend_ms"]) <= float(match["total"])
    assert "81234567890" not in line and API_KEY not in line


def test_not_found_and_error_lines(client, auth, demo, timing_lines):
    client.get("/api/contacts/by-phone", headers=auth,
               query_string={"phone": "+6289999999999", "workspace_id": WORKSPACE})
    client.get("/api/contacts/by-phone", headers={"x-api-key": "wrong-key"}, query_string={"phone": "1"})
    client.get("/api/contacts/by-phone", headers=auth, query_string={"phone": "hello", "workspace_id": WORKSPACE})
    client.get("/api/elsewhere", headers=auth)
    lines = [LINE.fullmatch(line) for line in timing_lines()]
    assert all(lines) and len(lines) == 4
    assert [(m["status"], m["found"], m["queries"]) for m in lines] == [
        ("200", "false", "1"), ("401", "-", "0"), ("400", "-", "0"), ("404", "-", "0")]
    assert lines[0]["phone"] == "+62899****999" and lines[2]["phone"] == "-"
    assert not any("wrong-key" in m.string or "hello" in m.string for m in lines)


def test_insane_request_id_is_replaced(client, auth, demo):
    for given in ["x" * 65, "a b", "<script>", ""]:
        response = client.get("/api/contacts/by-phone", headers={**auth, "X-Request-ID": given},
                              query_string={"phone": "081234567890", "workspace_id": WORKSPACE})
        assert response.headers["X-Request-ID"] != given
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_no_line_outside_api(client):
    response = client.get("/favicon.ico")
    assert "Server-Timing" not in response.headers
