"""PII-safe logs: everything Kontak logged during this suite, read last (hence the name).

The app's own log records (captured in conftest) and every gunicorn and
stand-in log file the suite wrote hold no unmasked phone number, no key or
secret, no signature and no message content.
"""

from __future__ import annotations

import re

import pytest

from services import api_keys
from tests import test_parity, test_webhook
from tests.conftest import API_KEY, CAPTURED_LOGS, LIVE_SECRET, load_contract
from tests.helpers_keys import ISSUED

PHONE = re.compile(r"(?<![0-9A-Za-z_.])\+?\d{9,15}(?![0-9A-Za-z_])")
SIGNATURE = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def message_contents() -> set[str]:
    contents = {m["content"] for m in load_contract("webhook_scenario.json")["messages"]}
    for contact in load_contract("demo_data.json")["contacts"]:
        contents |= {n["content"] for n in contact["notes"]}
        contents |= {m["content"] for m in (contact["conversation"] or {}).get("messages", [])}
    contents |= set(test_parity.MESSAGES)
    return {c for c in contents if len(c) >= 8}


@pytest.fixture(scope="module")
def everything_logged(tmp_path_factory) -> str:
    base = tmp_path_factory.getbasetemp()
    files = [*base.rglob("gunicorn*.log"), *base.rglob("standin*.log")]
    return "\n".join(CAPTURED_LOGS + [f.read_text(errors="replace") for f in files])


def test_the_suite_logged_something(everything_logged):
    assert everything_logged.count("timing route=") > 100


def test_no_phone_number(everything_logged):
    assert PHONE.findall(everything_logged) == []


def test_no_key_secret_or_signature(everything_logged):
    for secret in (API_KEY, LIVE_SECRET, test_webhook.SECRET):
        assert secret not in everything_logged
    assert SIGNATURE.findall(everything_logged) == []


def test_no_workspace_key_hash_or_prefix(everything_logged):
    """Keys per workspace (issue 14): every key the suite issued, its SHA-256 and its display prefix."""
    for key in ISSUED:
        assert key not in everything_logged
        assert api_keys.hash_key(key) not in everything_logged
        assert key[:api_keys.PREFIX_LENGTH] not in everything_logged


def test_no_message_content(everything_logged):
    assert [c for c in message_contents() if c in everything_logged] == []
