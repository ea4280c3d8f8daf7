"""log-summary reads timing lines out of a messy gunicorn log."""

from click.testing import CliRunner

from commands.compare.cli import log_summary_command
from commands.compare.latency import describe
from commands.compare.timing_lines import parse_time, timing_rows

LOG = """[2026-11-24 10:00:00 +0000] [100] [INFO] Starting gunicorn 27.0.1
127.0.0.1 - - [24/Nov/2026:10:00:01 +0000] "GET /api/contacts/by-phone HTTP/1.1" 200 310 "-" "curl/8"

2026-11-24T10:00:02Z timing route=/api/contacts/by-phone backend=supabase method=GET status=200 found=true total_ms=1.00 backend_ms=0.50 queries=1 phone=+62812****890 request_id=a
2026-11-24T10:00:03Z timing route=/api/contacts/by-phone backend=supabase method=GET status=200 found=false total_ms=3.00 backend_ms=1.50 queries=1 phone=+62812****891 request_id=b
Traceback (most recent call last):
  File "x.py", line 1, in <module>
RuntimeError: boom timing route=fake
2026-11-24T10:00:04Z timing route=/api/contacts/by-phone-convex backend=convex method=GET status=200 found=true total_ms=2.00 backend_ms=1.80 queries=1 phone=+62812****890 request_id=c
timing route=/api/contacts/by-phone-convex backend=convex method=GET status=503 found=- total_ms=9.00 backend_ms=8.00 queries=1 phone=+62812****890 request_id=d
2026-11-24T11:00:00Z timing route=/api/contacts/by-phone backend=supabase method=GET status=200 found=true total_ms=5.00 backend_ms=2.50 queries=1 phone=+62812****890 request_id=e
"""  # noqa: E501


def test_groups_by_backend_route_and_status_class():
    rows = timing_rows(LOG.splitlines())
    keys = [(r["backend"], r["route"], r["status"]) for r in rows]
    assert keys == [("convex", "/api/contacts/by-phone-convex", "2xx"), ("convex", "/api/contacts/by-phone-convex",
                    "5xx"), ("supabase", "/api/contacts/by-phone", "2xx")]
    supabase = rows[2]
    assert supabase["total_ms"] == describe([1.0, 3.0, 5.0])
    assert supabase["total_ms"]["p50"] == 3.0 and supabase["backend_ms"]["max"] == 2.5
    assert supabase["mean_queries"] == 1


def test_since_and_until_keep_only_stamped_lines_in_range():
    rows = timing_rows(LOG.splitlines(), parse_time("2026-11-24T10:00:02Z"), parse_time("2026-11-24T10:30:00"))
    assert [(r["backend"], r["total_ms"]["count"]) for r in rows] == [("convex", 1), ("supabase", 2)]


def test_command_reads_stdin_and_prints_a_table():
    result = CliRunner().invoke(log_summary_command, [], input=LOG)
    assert result.exit_code == 0, result.output
    assert "supabase" in result.output and "convex" in result.output and "5xx" in result.output


def test_command_without_timing_lines_fails():
    result = CliRunner().invoke(log_summary_command, [], input="nothing here\n")
    assert result.exit_code == 1
