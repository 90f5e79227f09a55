"""Adapters parse response bodies recorded from the providers' documentation, and the computed
costs equal figures worked out by hand. The HTTP layer is httpx.MockTransport, nothing else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from providers import http
from providers.anthropic import AnthropicProvider
from providers.gemini import GeminiProvider
from providers.openai_compat import OpenAICompatProvider
from routing.deployments import Deployment
from routing.price_table import lookup_prices
from routing.prices import cost_usd
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    Message,
    ProviderError,
)

KEY = "sk-test-SECRET-0123456789abcdef"

# OpenAI Chat Completions (the prompt caching guide's figures).
OPENAI_CACHED = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1730000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": "billing", "refusal": None},
        }
    ],
    "usage": {
        "prompt_tokens": 4263,
        "completion_tokens": 529,
        "total_tokens": 4792,
        "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "system_fingerprint": "fp_0ba0d124f1",
}

# OpenAI reasoning guide: reasoning tokens are inside completion_tokens.
OPENAI_REASONING = {
    "id": "chatcmpl-reason",
    "object": "chat.completion",
    "model": "o4-mini-2025-04-16",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Here is a bash script..."},
        }
    ],
    "usage": {
        "prompt_tokens": 75,
        "completion_tokens": 1186,
        "total_tokens": 1261,
        "completion_tokens_details": {"reasoning_tokens": 1024},
    },
}

# Anthropic prompt-caching guide: first call writes the cache, second reads it.
ANTHROPIC_WRITE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "The novel's main themes are..."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 0,
        "output_tokens": 393,
        "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
    },
}
ANTHROPIC_READ = {
    **ANTHROPIC_WRITE,
    "id": "msg_02",
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 188086,
        "output_tokens": 393,
    },
}

# Gemini thinking guide: thoughtsTokenCount is outside candidatesTokenCount, billed as output.
GEMINI_THINKING = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "Thinking about primes...", "thought": True},
                    {"text": "The sum of the first 50 primes is 5117."},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 11,
        "candidatesTokenCount": 520,
        "totalTokenCount": 1310,
        "thoughtsTokenCount": 779,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-gem-1",
}
GEMINI_CACHED = {
    "candidates": [
        {"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}
    ],
    "usageMetadata": {
        "promptTokenCount": 250000,
        "cachedContentTokenCount": 200000,
        "candidatesTokenCount": 1000,
        "totalTokenCount": 251000,
    },
}

# DeepSeek reports cache hits in its own fields.
DEEPSEEK = {
    "id": "ds-1",
    "object": "chat.completion",
    "model": "deepseek-chat",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
    ],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "prompt_cache_hit_tokens": 800,
        "prompt_cache_miss_tokens": 200,
    },
}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.setenv(env, KEY)
    yield
    http.use_transport(None)


def _serve(
    status: int, body: Any, headers: dict[str, str] | None = None, seen: list | None = None
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers or {})

    http.use_transport(httpx.MockTransport(handler))


def _request(model: str, **kw: Any) -> CompletionRequest:
    messages = [Message(role="system", content="Classify."), Message(role="user", content="hi")]
    return CompletionRequest(deployment="d", model=model, messages=messages, **kw)


def _call(provider: Any, model: str, dep: Deployment, **kw: Any) -> CompletionResult:
    return asyncio.run(provider.complete(_request(model, **kw), dep))


def test_openai_cached_tokens_and_cost() -> None:
    seen: list[httpx.Request] = []
    _serve(200, OPENAI_CACHED, {"x-request-id": "req_123"}, seen)
    dep = Deployment(provider="openai", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    result = _call(OpenAICompatProvider(), "gpt-4o-mini", dep)
    assert result.text == "billing" and result.request_id == "req_123"
    u = result.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (4263, 4096, 529)
    # (167 * 0.15 + 4096 * 0.075 + 529 * 0.60) / 1e6, worked by hand: 0.00064965
    assert cost_usd(u, lookup_prices("gpt-4o-mini-2024-07-18")) == pytest.approx(0.00064965)
    sent = json.loads(seen[0].content)
    assert seen[0].url == "https://api.openai.com/v1/chat/completions"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert sent["max_completion_tokens"] == 512 and "max_tokens" not in sent


def test_openai_reasoning_tokens_billed_as_output() -> None:
    seen: list[httpx.Request] = []
    _serve(200, OPENAI_REASONING, seen=seen)
    dep = Deployment(provider="openai", model="o4-mini", temperature=0.0, logprobs=True)
    result = _call(OpenAICompatProvider(), "o4-mini", dep)
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (1186, 1024)
    # (75 * 1.10 + 1186 * 4.40) / 1e6 = 0.0053009
    assert cost_usd(result.usage, lookup_prices("o4-mini")) == pytest.approx(0.0053009)
    sent = json.loads(seen[0].content)
    assert "temperature" not in sent and "logprobs" not in sent  # reasoning models reject them


def test_deepseek_cache_hit_fields() -> None:
    _serve(200, DEEPSEEK)
    dep = Deployment(provider="deepseek", model="deepseek-chat")
    u = _call(OpenAICompatProvider(), "deepseek-chat", dep).usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (1000, 800, 100)
    # (200 * 0.28 + 800 * 0.028 + 100 * 0.42) / 1e6 = 0.0001204
    assert cost_usd(u, lookup_prices("deepseek-chat")) == pytest.approx(0.0001204)


def test_anthropic_cache_write_and_read() -> None:
    seen: list[httpx.Request] = []
    _serve(200, ANTHROPIC_WRITE, {"request-id": "req_ant"}, seen)
    dep = Deployment(provider="anthropic", model="claude-sonnet-4-5")
    first = _call(AnthropicProvider(), "claude-sonnet-4-5", dep)
    u = first.usage
    assert (u.input_tokens, u.cache_write_tokens, u.cached_input_tokens) == (188107, 188086, 0)
    prices = lookup_prices("claude-sonnet-4-5")
    # (21 * 3 + 188086 * 3.75 + 393 * 15) / 1e6 = 0.7112805
    assert cost_usd(u, prices) == pytest.approx(0.7112805)
    assert first.request_id == "req_ant"
    sent = json.loads(seen[0].content)
    assert sent["system"] == "Classify." and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert seen[0].headers["x-api-key"] == KEY and seen[0].headers["anthropic-version"]
    _serve(200, ANTHROPIC_READ)
    u = _call(AnthropicProvider(), "claude-sonnet-4-5", dep).usage
    assert (u.input_tokens, u.cached_input_tokens) == (188107, 188086)
    # (21 * 3 + 188086 * 0.30 + 393 * 15) / 1e6 = 0.0623838
    assert cost_usd(u, prices) == pytest.approx(0.0623838)


def test_gemini_thoughts_are_output_and_thought_parts_dropped() -> None:
    seen: list[httpx.Request] = []
    _serve(200, GEMINI_THINKING, seen=seen)
    dep = Deployment(provider="gemini", model="gemini-2.5-flash", json_output=True)
    result = _call(GeminiProvider(), "gemini-2.5-flash", dep)
    assert result.text == "The sum of the first 50 primes is 5117."
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (1299, 779)
    # (11 * 0.30 + (520 + 779) * 2.50) / 1e6 = 0.0032508
    assert cost_usd(result.usage, lookup_prices("gemini-2.5-flash")) == pytest.approx(0.0032508)
    req = seen[0]
    assert req.url.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == KEY and "key=" not in str(req.url)
    sent = json.loads(req.content)
    assert sent["systemInstruction"] == {"parts": [{"text": "Classify."}]}
    assert sent["generationConfig"]["responseMimeType"] == "application/json"


def test_gemini_long_context_rates_apply_to_whole_request() -> None:
    _serve(200, GEMINI_CACHED)
    dep = Deployment(provider="gemini", model="gemini-2.5-pro")
    u = _call(GeminiProvider(), "gemini-2.5-pro", dep).usage
    assert (u.input_tokens, u.cached_input_tokens) == (250000, 200000)
    # above 200k: (50000 * 2.50 + 200000 * 0.25 + 1000 * 15) / 1e6 = 0.19
    assert cost_usd(u, lookup_prices("gemini-2.5-pro")) == pytest.approx(0.19)


def test_azure_headers_and_query() -> None:
    seen: list[httpx.Request] = []
    _serve(200, OPENAI_CACHED, seen=seen)
    dep = Deployment(
        provider="azure_openai",
        model="gpt-4o-mini",
        api_base="https://res.openai.azure.com/openai/deployments/mini",
        api_key_env="OPENAI_API_KEY",
        extra_query={"api-version": "2025-01-01-preview"},
    )
    _call(OpenAICompatProvider(), "gpt-4o-mini", dep)
    req = seen[0]
    assert req.headers["api-key"] == KEY and "authorization" not in req.headers
    assert req.url.params["api-version"] == "2025-01-01-preview"
    assert req.url.path == "/openai/deployments/mini/chat/completions"


def test_groq_profile_drops_logprobs() -> None:
    seen: list[httpx.Request] = []
    _serve(200, OPENAI_CACHED, seen=seen)
    dep = Deployment(
        provider="groq", model="llama-3.1-8b-instant", api_key_env="OPENAI_API_KEY", logprobs=True
    )
    _call(OpenAICompatProvider(), "llama-3.1-8b-instant", dep, json_schema={"type": "object"})
    sent = json.loads(seen[0].content)
    assert "logprobs" not in sent and sent["max_tokens"] == 512
    assert sent["response_format"] == {"type": "json_object"}
    assert str(seen[0].url).startswith("https://api.groq.com/openai/v1/")


@pytest.mark.parametrize(
    ("body", "billed"),
    [
        ({"id": "x", "choices": []}, False),
        (
            {
                "choices": [
                    {"finish_reason": "length", "message": {"role": "assistant", "content": ""}}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 512},
            },
            True,
        ),
        (
            {
                "choices": [
                    {
                        "finish_reason": "stop",
                        "message": {"content": None, "refusal": "I can't help with that."},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 7},
            },
            True,
        ),
        (b"", True),
        (b"<html>502 Bad Gateway</html>", True),
        (b'{"choices": [{"message": {"content": "trunc', True),
    ],
)
def test_openai_200_that_is_not_an_answer(body: Any, billed: bool) -> None:
    _serve(200, body)
    dep = Deployment(provider="openai", model="gpt-4o-mini")
    with pytest.raises(ProviderError) as info:
        _call(OpenAICompatProvider(), "gpt-4o-mini", dep)
    assert info.value.error_class is ErrorClass.BAD_RESPONSE
    assert (info.value.billed_usage is not None) is billed


def test_anthropic_and_gemini_bad_shapes() -> None:
    _serve(
        200,
        {
            "type": "message",
            "content": [],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 5, "output_tokens": 100},
        },
    )
    dep = Deployment(provider="anthropic", model="claude-haiku-4-5")
    with pytest.raises(ProviderError) as info:
        _call(AnthropicProvider(), "claude-haiku-4-5", dep)
    assert info.value.error_class is ErrorClass.BAD_RESPONSE
    assert info.value.billed_usage is not None and info.value.billed_usage.output_tokens == 100
    _serve(
        200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}
    )
    dep = Deployment(provider="gemini", model="gemini-2.0-flash")
    with pytest.raises(ProviderError) as info:
        _call(GeminiProvider(), "gemini-2.0-flash", dep)
    assert info.value.error_class is ErrorClass.BAD_RESPONSE and "SAFETY" in info.value.message


def test_missing_key_is_permanent_and_names_only_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    dep = Deployment(provider="openai", model="gpt-4o-mini")
    with pytest.raises(ProviderError) as info:
        _call(OpenAICompatProvider(), "gpt-4o-mini", dep)
    assert info.value.error_class is ErrorClass.PERMANENT and "OPENAI_API_KEY" in info.value.message


def test_error_message_never_contains_the_key() -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    _serve(401, body)
    dep = Deployment(provider="openai", model="gpt-4o-mini")
    with pytest.raises(ProviderError) as info:
        _call(OpenAICompatProvider(), "gpt-4o-mini", dep)
    assert info.value.error_class is ErrorClass.PERMANENT and info.value.status_code == 401
    assert KEY not in info.value.message and "Incorrect API key provided" in info.value.message
