"""tiktoken offline: cookbook counts, hash check, and no download ever attempted."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from routing import tokens
from routing.types import Message

# The OpenAI cookbook's "How to count tokens with tiktoken" example and its published counts.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more "
        "bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for "
        "the client deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("openai/gpt-4o-mini-2024-07-18", 124),
    ],
)
def test_cookbook_counts(model: str, expected: int) -> None:
    assert tokens.count_message_tokens(COOKBOOK, model) == expected
    assert tokens.is_exact(model)


def test_published_token_ids() -> None:
    assert tokens.get_encoding("o200k_base").encode("Hello, world!") == [13225, 11, 2375, 0]
    assert tokens.get_encoding("cl100k_base").encode("Hello, world!") == [9906, 11, 1917, 0]


def test_message_objects_and_estimates_for_other_vendors() -> None:
    messages = [Message(role="user", content="Hello, world!")]
    exact = tokens.count_message_tokens(messages, "gpt-4o")
    assert exact == 3 + 3 + 1 + 4
    claude = tokens.count_message_tokens(messages, "claude-sonnet-4-5")
    gemini = tokens.count_message_tokens(messages, "gemini-2.5-flash")
    assert claude == -(-exact * 135 // 100) and gemini == -(-exact * 12 // 10)
    assert not tokens.is_exact("claude-sonnet-4-5") and not tokens.is_exact("gpt-oss-120b")
    assert tokens.count_text_tokens("Hello, world!", "gpt-4") == 4


def test_hash_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tokens.ENCODING_SHA256, "cl100k_base", "0" * 64)
    with pytest.raises(tokens.EncodingDataError, match="sha256"):
        tokens._read_ranks("cl100k_base")


def test_no_network_ever() -> None:
    """In a fresh interpreter whose sockets all fail, both encodings build and tiktoken's own
    get_encoding() returns them without trying to download."""
    script = textwrap.dedent(
        """
        import os, socket, tempfile
        os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp()  # empty: a download would be needed
        def refuse(*a, **k):
            raise AssertionError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from routing import tokens
        import tiktoken
        assert tokens.count_text_tokens("Hello, world!", "gpt-4o") == 4
        assert tokens.count_text_tokens("Hello, world!", "gpt-3.5-turbo") == 4
        assert tiktoken.get_encoding("o200k_base").encode("Hello, world!") == [13225, 11, 2375, 0]
        assert tiktoken.encoding_for_model("gpt-4").encode("Hello, world!") == [9906, 11, 1917, 0]
        print("offline ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "offline ok" in done.stdout
