"""The official openai and anthropic SDKs call the fake server and parse its answers and its
errors as they would the real APIs' (SDK retries off: each error must surface as-is)."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from providers.fake_server import (
    AnswerConfig,
    FakeServerConfig,
    LimitsConfig,
    running_fake_server,
)
from tests.providers.conftest import SDK_KEY as KEY


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    config = FakeServerConfig(api_key=KEY, context_window=2000, answer=AnswerConfig(mode="echo"))
    with running_fake_server(config) as base:
        yield base


def test_openai_sdk_parses_completion_usage_and_logprobs(oai: openai.OpenAI) -> None:
    response = oai.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Repeat the user."},
            {"role": "user", "content": "Hello, world!"},
        ],
        logprobs=True,
        max_completion_tokens=50,
    )
    choice = response.choices[0]
    assert choice.message.content == "Hello, world!" and choice.finish_reason == "stop"
    assert response.usage is not None
    # Cookbook count in o200k: 3 priming + (3 + "system" 1 + "Repeat the user." 4)
    # + (3 + "user" 1 + "Hello, world!" 4) = 19.
    assert response.usage.prompt_tokens == 19
    assert response.usage.completion_tokens == 4
    assert response.usage.prompt_tokens_details.cached_tokens == 0
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert [t.token for t in choice.logprobs.content] == ["Hello", ",", " world", "!"]


def test_openai_sdk_structured_output(oai: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["billing", "bug"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    response = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "bug"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "t", "schema": schema, "strict": True},
        },
    )
    assert response.choices[0].message.content == '{"label": "bug"}'


@pytest.mark.parametrize(
    ("kind", "exc", "status", "code"),
    [
        ("rate_limit", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("quota", openai.RateLimitError, 429, "insufficient_quota"),
        ("server_error", openai.InternalServerError, 500, None),
        ("unavailable", openai.InternalServerError, 503, None),
        ("timeout", openai.APIStatusError, 408, None),
        ("bad_request", openai.BadRequestError, 400, None),
        ("not_found", openai.NotFoundError, 404, "model_not_found"),
        ("context_length", openai.BadRequestError, 400, "context_length_exceeded"),
    ],
)
def test_openai_sdk_errors(
    oai: openai.OpenAI, kind: str, exc: type[openai.APIStatusError], status: int, code: str | None
) -> None:
    with pytest.raises(exc) as info:
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-error": kind},
        )
    assert info.value.status_code == status
    assert info.value.code == code
    assert info.value.request_id and info.value.request_id.startswith("req_")
    if kind == "rate_limit":
        headers = info.value.response.headers
        assert headers["retry-after"] == "1" and headers["retry-after-ms"] == "1000"


def test_openai_sdk_auth_and_real_context_overflow(url: str, oai: openai.OpenAI) -> None:
    bad = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as too_long:
        oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "word " * 3000}]
        )
    assert too_long.value.code == "context_length_exceeded"
    assert "maximum context length is 2000 tokens" in str(too_long.value)


def test_anthropic_sdk_parses_message_and_usage(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        system="Repeat the user.",
        messages=[{"role": "user", "content": "Hello, world!"}],
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello, world!"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 19 and message.usage.output_tokens == 4
    assert message.usage.cache_read_input_tokens == 0


@pytest.mark.parametrize(
    ("kind", "exc", "status", "etype"),
    [
        ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("quota", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("server_error", anthropic.InternalServerError, 500, "api_error"),
        ("overloaded", anthropic.InternalServerError, 529, "overloaded_error"),
        ("timeout", anthropic.InternalServerError, 504, "timeout_error"),
        ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("not_found", anthropic.NotFoundError, 404, "not_found_error"),
        ("context_length", anthropic.BadRequestError, 400, "invalid_request_error"),
    ],
)
def test_anthropic_sdk_errors(
    ant: anthropic.Anthropic,
    kind: str,
    exc: type[anthropic.APIStatusError],
    status: int,
    etype: str,
) -> None:
    with pytest.raises(exc) as info:
        ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-error": kind},
        )
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == etype
    assert info.value.request_id and info.value.request_id.startswith("req_")


def test_anthropic_sdk_auth(url: str) -> None:
    bad = anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_sdks_see_rate_limit_headers() -> None:
    config = FakeServerConfig(limits=LimitsConfig(rpm=2))
    with running_fake_server(config) as base:
        oai = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        raw = oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}]
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == "1"
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}]
        )
        with pytest.raises(openai.RateLimitError) as info:
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "c"}]
            )
        headers = info.value.response.headers
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert 25_000 < float(headers["retry-after-ms"]) <= 30_000  # 2 RPM: one every 30 s
        ant = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
        ant.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        ant.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        with pytest.raises(anthropic.RateLimitError) as limited:
            ant.messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert limited.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert int(limited.value.response.headers["retry-after"]) in range(25, 31)
