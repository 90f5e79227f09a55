"""Anthropic Messages API over httpx (no SDK at run time). One call, no retries.

Differences from OpenAI that matter here: the system prompt is a top-level field, `max_tokens` is
required, messages must alternate user/assistant, there are no logprobs, and `usage.input_tokens`
EXCLUDES cache reads and writes (total prompt = input + cache_creation + cache_read).
"""

from __future__ import annotations

from typing import Any

from providers.http import (
    RawResponse,
    api_key,
    bad_response,
    positive_int,
    post_json,
    raise_for_status,
)
from routing.deployments import Deployment
from routing.tokens import count_message_tokens, count_text_tokens
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    ProviderError,
    Usage,
)

DEFAULT_BASE = "https://api.anthropic.com"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
API_VERSION = "2023-06-01"  # override with extra_headers: {anthropic-version: ...}


def rate_limit_headers(headers: Any) -> dict[str, float] | None:
    """`anthropic-ratelimit-{requests,tokens}-{remaining,reset}` (resets are RFC 3339 times)."""
    from datetime import UTC, datetime

    found: dict[str, float] = {}
    for what in ("requests", "tokens"):
        remaining = headers.get(f"anthropic-ratelimit-{what}-remaining")
        try:
            if remaining is not None and float(remaining) >= 0:
                found[f"{what}_remaining"] = float(remaining)
            reset = headers.get(f"anthropic-ratelimit-{what}-reset")
            if reset:
                when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
                found[f"{what}_reset_s"] = max(0.0, (when - datetime.now(UTC)).total_seconds())
        except ValueError:
            pass
    return found or None


def build_payload(request: CompletionRequest, deployment: Deployment) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role in ("system", "developer"))
    turns: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role in ("system", "developer"):
            continue
        role = "assistant" if m.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            # The API rejects two turns of the same role in a row; merge them.
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": role, "content": m.content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "(see the system prompt)"})
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": min(request.max_output_tokens, deployment.max_output_tokens),
        "messages": turns,
    }
    if system:
        body["system"] = system
    temperature = request.temperature if request.temperature is not None else deployment.temperature
    if temperature is not None:
        body["temperature"] = min(temperature, 1.0)  # Anthropic's range is 0-1
    if request.json_schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
    # No logprobs in this API: a deployment asking for them gets none (documented).
    return body


def parse_usage(raw: Any) -> Usage | None:
    """Normalise: input = input_tokens + cache_creation_input_tokens + cache_read_input_tokens."""
    if not isinstance(raw, dict) or "input_tokens" not in raw:
        return None
    uncached = positive_int(raw.get("input_tokens"))
    written = positive_int(raw.get("cache_creation_input_tokens"))
    if not written and isinstance(raw.get("cache_creation"), dict):
        written = sum(positive_int(v) for v in raw["cache_creation"].values())
    read = positive_int(raw.get("cache_read_input_tokens"))
    return Usage(
        input_tokens=uncached + written + read,
        cached_input_tokens=read,
        cache_write_tokens=written,
        output_tokens=positive_int(
            raw.get("output_tokens")
        ),  # includes thinking; no separate count
    )


def parse_response(raw: RawResponse, request: CompletionRequest) -> CompletionResult:
    body = raw.body
    assert isinstance(body, dict)
    usage = parse_usage(body.get("usage"))
    content = body.get("content")
    if body.get("type") not in (None, "message") or not isinstance(content, list):
        raise bad_response("anthropic", raw, "body is not a message with content blocks", usage)
    text = "".join(
        str(block.get("text", ""))
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    )
    stop = str(body.get("stop_reason") or "end_turn")
    if stop == "model_context_window_exceeded":
        raise ProviderError(
            ErrorClass.CONTEXT_LENGTH,
            "anthropic: stop_reason=model_context_window_exceeded",
            status_code=raw.status,
            billed_usage=usage,
            latency_ms=raw.latency_ms,
        )
    if stop == "refusal":
        raise bad_response("anthropic", raw, "stop_reason=refusal", usage)
    if not text.strip():
        why = "empty text" + (" (stop_reason=max_tokens)" if stop == "max_tokens" else "")
        raise bad_response("anthropic", raw, why, usage)
    if usage is None:  # not seen from the real API; count it ourselves and say so
        usage = Usage(
            input_tokens=count_message_tokens(request.messages, request.model),
            output_tokens=count_text_tokens(text, request.model),
            estimated=True,
        )
    finish = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}.get(stop, stop)
    return CompletionResult(
        text=text,
        usage=usage,
        finish_reason=finish,
        latency_ms=raw.latency_ms,
        request_id=raw.headers.get("request-id") or body.get("id"),
        raw_usage=body.get("usage") or {},
        rate_limit=rate_limit_headers(raw.headers),
    )


def target_for(deployment: Deployment) -> tuple[str, dict[str, str], dict[str, str], str | None]:
    """(base URL, headers, query params, key) of a deployment: shared with the batch client."""
    key = api_key(deployment, DEFAULT_KEY_ENV)
    base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
    headers = {
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": API_VERSION,
    }
    if key:
        headers["x-api-key"] = key
    headers.update(deployment.extra_headers)
    return base, headers, dict(deployment.extra_query), key


class AnthropicProvider:
    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        base, headers, params, key = target_for(deployment)
        raw = await post_json(
            "anthropic",
            f"{base}/v1/messages",
            headers=headers,
            params=params,
            payload=build_payload(request, deployment),
            deployment=deployment,
            request=request,
            secrets=(key,),
        )
        raise_for_status("anthropic", raw, request, (key,))
        return parse_response(raw, request)
