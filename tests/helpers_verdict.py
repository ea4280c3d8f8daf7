"""Shadow lines (docs/contract.md §15) with known distributions, for the verdict's tests."""

from __future__ import annotations

import base64
import random
import subprocess
from pathlib import Path

ROUTES = {"supabase": "/api/contacts/by-phone", "convex": "/api/contacts/by-phone-convex"}
OTHER = {"supabase": "convex", "convex": "supabase"}


def shadow_line(primary: str, primary_ms: float | str, shadow_ms: float | str, result: str = "match",
                request_id: str = "r", shadow_status: str = "200") -> str:
    """One line as services/shadow.py writes it (§15's key order, phones masked as in §6)."""
    pms = primary_ms if isinstance(primary_ms, str) else f"{primary_ms:.2f}"
    sms = shadow_ms if isinstance(shadow_ms, str) else f"{shadow_ms:.2f}"
    return (f"shadow route={ROUTES[primary]} primary={primary} shadow={OTHER[primary]} status=200 "
            f"shadow_status={shadow_status} primary_ms={pms} shadow_ms={sms} result={result} "
            f"phone=+62812****890 bsuid=- request_id={request_id}")


def paired_log(count: int, convex_factor: float, seed: int = 3, results: dict[int, str] | None = None) -> list[str]:
    """`count` shadow lines, primaries alternating; request i takes t_i on PostgreSQL and
    convex_factor × t_i on Convex (t_i log-normal around 1 ms), so the true ratio of every
    percentile is convex_factor. `results` overrides the result of line i."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        supabase_ms = rng.lognormvariate(0, 0.5)
        convex_ms = supabase_ms * convex_factor
        primary = "supabase" if i % 2 == 0 else "convex"
        times = (supabase_ms, convex_ms) if primary == "supabase" else (convex_ms, supabase_ms)
        lines.append(shadow_line(primary, *times, result=(results or {}).get(i, "match"), request_id=f"v{i}"))
    return lines


def independent_log(count: int, seed: int = 5) -> list[str]:
    """Both backends drawn from one distribution, independently: the ratio's interval includes 1."""
    rng = random.Random(seed)
    return [shadow_line("supabase" if i % 2 == 0 else "convex", rng.lognormvariate(0, 0.5),
                        rng.lognormvariate(0, 0.5), request_id=f"e{i}") for i in range(count)]


CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing of its own on the network: no update checks, sync, QUIC or first-run pages.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Debian's chromium, headless, with a profile of its own (`profile`), run to its end."""
    assert Path(CHROMIUM).exists(), "the /verdict browser test needs Debian's chromium: make test installs it"
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def basic(key: str, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}
