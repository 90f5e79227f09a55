"""Classification, retry hints, backoff and redaction: pure functions, no network."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from providers.errors import (
    backoff_delay,
    classify_status,
    error_message,
    parse_duration,
    parse_retry_after,
    redact,
)
from routing.types import ErrorClass as E

OPENAI_RATE = {
    "error": {
        "message": "Rate limit reached ... Please try again in 26.604s.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
OPENAI_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
ANTHROPIC_SPEND = {
    "type": "error",
    "error": {
        "type": "rate_limit_error",
        "message": "limit",
        "details": {"error_code": "enforced_spend_limit_reached"},
    },
}
GEMINI_FREE_TIER = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"},
        ],
    }
}


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (408, None, {}, E.TRANSIENT),
        (409, None, {}, E.TRANSIENT),
        (429, OPENAI_RATE, {}, E.RATE_LIMITED),
        (429, OPENAI_QUOTA, {}, E.PERMANENT),
        (429, ANTHROPIC_SPEND, {}, E.PERMANENT),
        (429, OPENAI_QUOTA, {"x-should-retry": "true"}, E.PERMANENT),
        (429, GEMINI_FREE_TIER, {}, E.RATE_LIMITED),  # quota words, but a retryDelay
        (
            429,
            {
                "error": {
                    "code": 429,
                    "status": "RESOURCE_EXHAUSTED",
                    "message": "You exceeded your current quota, please check your plan "
                    "and billing details.",
                }
            },
            {},
            E.PERMANENT,
        ),
        (500, None, {}, E.TRANSIENT),
        (502, "<html>bad gateway</html>", {}, E.TRANSIENT),
        (503, None, {}, E.TRANSIENT),
        (529, {"type": "error", "error": {"type": "overloaded_error"}}, {}, E.TRANSIENT),
        (400, {"error": {"message": "bad", "code": None}}, {}, E.PERMANENT),
        (400, {"error": {"code": "context_length_exceeded", "message": "x"}}, {}, E.CONTEXT_LENGTH),
        (
            400,
            {"error": {"message": "prompt is too long: 210000 tokens > 200000"}},
            {},
            E.CONTEXT_LENGTH,
        ),
        (
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096",
                "code": 400,
            },
            {},
            E.CONTEXT_LENGTH,
        ),  # old vLLM flat shape, int code
        (401, None, {}, E.PERMANENT),
        (402, None, {}, E.PERMANENT),
        (403, None, {}, E.PERMANENT),
        (404, None, {}, E.PERMANENT),
        (400, None, {"x-should-retry": "true"}, E.TRANSIENT),
        (500, None, {"x-should-retry": "false"}, E.PERMANENT),
    ],
)
def test_classify_status(status: int, body: object, headers: dict, expected: E) -> None:
    assert classify_status(status, body, headers) is expected


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after-ms": "1500"}, None, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, None, 0.25),
        ({"Retry-After": "7"}, None, 7.0),
        ({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, None, 30.0),
        ({}, {"error": {"code": 429, "details": [{"retryDelay": "30s"}]}}, 30.0),
        ({}, {"error": {"code": 429, "details": [{"retryDelay": "1.5s"}]}}, 1.5),
        (
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2026-01-01T12:00:12Z",
                "anthropic-ratelimit-tokens-remaining": "500",
                "anthropic-ratelimit-tokens-reset": "2026-01-01T12:00:02Z",
            },
            None,
            12.0,
        ),
        ({}, OPENAI_RATE, 26.604),
        ({}, None, None),
        ({"retry-after": "garbage"}, None, None),
    ],
)
def test_parse_retry_after(headers: dict, body: object, expected: float | None) -> None:
    got = parse_retry_after(headers, body, now=NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_parse_duration_go_style() -> None:
    assert parse_duration("6m0s") == 360
    assert parse_duration("2s81ms") == pytest.approx(2.081)
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h") == 3600
    assert parse_duration("soon") is None


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    assert backoff_delay(0, 3.0) == 3.0
    assert backoff_delay(5, 120.0) == 120.0
    assert backoff_delay(0, 121.0) is None  # too long: cool the deployment down, fall back
    assert backoff_delay(0, 10.0, retry_after_cap=5.0) is None


def test_backoff_full_jitter_bounds() -> None:
    rng = random.Random(1)
    for retry_no, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        samples = [backoff_delay(retry_no, None, rng=rng) for _ in range(300)]
        assert all(s is not None and 0 <= s <= ceiling for s in samples)
        assert max(s for s in samples if s is not None) > ceiling * 0.8  # spread, not fixed
    assert backoff_delay(0, 0.0, rng=rng) is not None  # a zero hint means "no hint"


def test_redact_keys_headers_and_query() -> None:
    text = (
        "auth failed for sk-proj-abcdefghijklmnop1234 with Authorization: Bearer tok_abcdefgh12345 "
        "x-api-key: sk-ant-api03-XYZXYZXYZXYZ x-goog-api-key=AIzaSyA1234567890abcdefghijk "
        "url https://h/v1beta/models/g:generateContent?key=AIzaSecret123&alt=json "
        "custom secret-value-99"
    )
    out = redact(text, ["secret-value-99"])
    for secret in (
        "abcdefghijklmnop1234",
        "tok_abcdefgh12345",
        "XYZXYZ",
        "AIzaSyA1234567890",
        "AIzaSecret123",
        "secret-value-99",
    ):
        assert secret not in out
    assert "auth failed" in out and "&alt=json" in out and out.count("[REDACTED]") >= 5


@pytest.mark.parametrize(
    ("echoed", "fragments"),
    [
        ("Incorrect API key provided: sk-...XYZ.", ["XYZ"]),
        ("Invalid API key abc123...defXYZ, check it", ["abc123", "defXYZ"]),
        ("Incorrect API key provided: sk-proj-abcd**********************wxyz.", ["abcd", "wxyz"]),
        ("x-api-key sk-ant-api03-…Qx9A is invalid", ["api03", "Qx9A"]),
        ("API key AIzaSy...1234 not valid", ["AIzaSy", "1234"]),
        ("Incorrect API key provided: gsk_****************9f2c", ["9f2c"]),
        ("key ab12…cd34 revoked", ["ab12", "cd34"]),
    ],
)
def test_redact_masked_key_fragments_a_provider_echoes(echoed: str, fragments: list[str]) -> None:
    out = redact(echoed)
    assert "[REDACTED]" in out
    for fragment in fragments:
        assert fragment not in out, out


@pytest.mark.parametrize(
    "prose",
    [
        "The model gpt-4o... is overloaded, try again",
        "wait...what happened",
        "see https://platform.openai.com/account/api-keys.",
        "**bold** and *stars*",
        "got 1...3 items",
    ],
)
def test_redact_leaves_prose_with_dots_and_stars_alone(prose: str) -> None:
    assert redact(prose) == prose


def test_error_message_keeps_provider_words() -> None:
    msg = error_message("openai", 429, OPENAI_QUOTA, secrets=["k"])
    assert msg.startswith("openai HTTP 429 insufficient_quota: You exceeded your current quota")
