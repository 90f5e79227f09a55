"""Every error class, driven through the real fake server on loopback, ends where docs/architecture.md's
table says: the adapter raises ProviderError with the right class, retry hint and billing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from providers.anthropic import AnthropicProvider
from providers.fake_server import (
    ErrorsConfig,
    FakeServerConfig,
    LimitsConfig,
    running_fake_server,
)
from providers.gemini import GeminiProvider
from providers.openai_compat import OpenAICompatProvider
from routing.deployments import Deployment, Timeouts
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    Message,
    ProviderError,
)

T, R, P, C, B = (
    ErrorClass.TRANSIENT,
    ErrorClass.RATE_LIMITED,
    ErrorClass.PERMANENT,
    ErrorClass.CONTEXT_LENGTH,
    ErrorClass.BAD_RESPONSE,
)
FORMATS: dict[str, tuple[str, str, Any]] = {
    # provider -> (model, api_base suffix, adapter)
    "openai": ("gpt-4o-mini", "/v1", OpenAICompatProvider()),
    "anthropic": ("claude-haiku-4-5", "", AnthropicProvider()),
    "gemini": ("gemini-2.5-flash", "/v1beta", GeminiProvider()),
}


def _deployment(url: str, provider: str, **kw: Any) -> Deployment:
    model, suffix, _ = FORMATS[provider]
    return Deployment(provider=provider, model=model, api_base=url + suffix, **kw)


def _run(url: str, provider: str, text: str = "hello there", **kw: Any) -> CompletionResult:
    model, _, adapter = FORMATS[provider]
    dep = _deployment(url, provider, **kw)
    request = CompletionRequest(
        deployment="d",
        model=model,
        messages=[Message(role="user", content=text)],
        max_output_tokens=64,
    )
    return asyncio.run(adapter.complete(request, dep))


def _fail(url: str, provider: str, kind: str | None = None, **kw: Any) -> ProviderError:
    if kind is not None:
        kw["extra_headers"] = {"x-fake-error": kind}
    with pytest.raises(ProviderError) as info:
        _run(url, provider, **kw)
    return info.value


# kind -> (error class, billed?, retry hint expected?)
TABLE: dict[str, tuple[ErrorClass, bool, bool]] = {
    "rate_limit": (R, False, True),
    "quota": (P, False, False),
    "server_error": (T, False, False),
    "unavailable": (T, False, False),
    "overloaded": (T, False, False),
    "timeout": (T, False, False),
    "bad_request": (P, False, False),
    "auth": (P, False, False),
    "not_found": (P, False, False),
    "context_length": (C, False, False),
    "malformed_json": (B, True, False),
    "empty_content": (B, True, False),
    "truncated_body": (B, True, False),
}


@pytest.mark.parametrize("provider", sorted(FORMATS))
@pytest.mark.parametrize("kind", sorted(TABLE))
def test_error_kind_classified(fake_url: str, provider: str, kind: str) -> None:
    cls, billed, hinted = TABLE[kind]
    error = _fail(fake_url, provider, kind)
    assert error.error_class is cls, error.message
    assert (error.billed_usage is not None) is billed
    assert (error.retry_after_s is not None) is hinted
    if hinted:
        assert error.retry_after_s == pytest.approx(1.0)
    assert "sk-fake-key" not in error.message
    assert error.latency_ms > 0


@pytest.mark.parametrize("provider", sorted(FORMATS))
def test_success_through_fake_server(fake_url: str, provider: str) -> None:
    result = _run(fake_url, provider, "Summarize: the cat sat on the mat.")
    assert result.text == "Summarize: the cat sat on the mat."
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert not result.usage.estimated and result.request_id


def test_empty_content_is_billed_as_reported(fake_url: str) -> None:
    error = _fail(fake_url, "openai", "empty_content")
    assert error.billed_usage is not None and not error.billed_usage.estimated
    assert error.billed_usage.output_tokens == 64 and error.billed_usage.reasoning_tokens == 64


@pytest.mark.parametrize("provider", sorted(FORMATS))
def test_hang_past_read_timeout_is_transient_and_estimated(fake_url: str, provider: str) -> None:
    error = _fail(fake_url, provider, "hang", timeouts=Timeouts(read=0.3))
    assert error.error_class is T and "ReadTimeout" in error.message
    assert error.billed_usage is not None and error.billed_usage.estimated  # upper bound
    assert 250 < error.latency_ms < 5000


def test_connection_refused_is_transient_and_not_billed() -> None:
    from providers.fake_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    error = _fail(url, "openai", timeouts=Timeouts(connect=1.0))
    assert error.error_class is T and error.billed_usage is None


def test_real_context_overflow_is_context_length() -> None:
    with running_fake_server(FakeServerConfig(context_window=100)) as url:
        for provider in FORMATS:
            with pytest.raises(ProviderError) as info:
                _run(url, provider, "word " * 200)
            assert info.value.error_class is C, info.value.message


def test_rate_limits_enforced_with_real_429s() -> None:
    config = FakeServerConfig(limits=LimitsConfig(rpm=3, tpm=300))
    with running_fake_server(config) as url:
        for _ in range(3):
            _run(url, "openai")
        error = _fail(url, "openai")
        assert error.error_class is R and error.status_code == 429
        assert error.retry_after_s is not None and 15 < error.retry_after_s <= 20  # 3 RPM
        assert "requests per min" in error.message
        # TPM: prompt + max output tokens are taken from the bucket (another model: fresh RPM).
        _run(url, "anthropic", "word " * 150)
        with pytest.raises(ProviderError) as info:
            _run(url, "anthropic", "word " * 150)
        assert info.value.error_class is R and info.value.retry_after_s is not None


def test_injected_error_mix_fractions() -> None:
    config = FakeServerConfig(errors=ErrorsConfig(server_error=0.5))
    with running_fake_server(config) as url:
        outcomes = []
        for _ in range(60):
            try:
                _run(url, "gemini")
                outcomes.append("ok")
            except ProviderError as exc:
                outcomes.append(exc.error_class.value)
        assert set(outcomes) == {"ok", "transient"}
        assert 15 <= outcomes.count("transient") <= 45


def test_unknown_forced_error_is_a_400(fake_url: str) -> None:
    error = _fail(fake_url, "openai", "no-such-kind")
    assert error.error_class is P and "x-fake-error must be one of" in error.message


@pytest.mark.parametrize(
    ("provider", "has_logprobs"), [("openai", True), ("gemini", True), ("anthropic", False)]
)
def test_logprobs_where_supported(fake_url: str, provider: str, has_logprobs: bool) -> None:
    result = _run(fake_url, provider, "Hello, world!", logprobs=True)
    if has_logprobs:
        assert result.token_logprobs is not None and len(result.token_logprobs) == 4
        assert all(lp <= 0 for lp in result.token_logprobs)
    else:
        assert result.token_logprobs is None  # the Messages API has no logprobs
