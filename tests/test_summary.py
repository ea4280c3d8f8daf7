"""The shared docs/contract.md §5 vectors; convex/ runs the same file."""

import pytest

from helpers import load_contract
from services.conversation_summary import SUMMARY_PREFIX_CHARS, load_topics, summarize_conversation

VECTORS = load_contract("summary_vectors.json")["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector):
    assert summarize_conversation(vector["messages"]) == vector["summary"]


def test_topics_come_from_the_shared_file():
    names = [name for name, _ in load_topics()]
    assert names[:2] == ["Australia", "UK"] and len(names) == 8


def test_prefix_bound_comes_from_the_shared_rules():
    """docs/webhook.md §6: the same bound on both backends, at least 2,000 code points."""
    assert SUMMARY_PREFIX_CHARS == load_contract("webhook_rules.json")["summary_prefix_chars"] >= 2000
    assert any(len(m) > SUMMARY_PREFIX_CHARS for v in VECTORS for m in v["messages"] if m)
