"""Google Gemini `generateContent` over httpx (no SDK at run time). One call, no retries.

Usage: `promptTokenCount` INCLUDES `cachedContentTokenCount`; `candidatesTokenCount` EXCLUDES
`thoughtsTokenCount`, which is billed as output, so output = candidates + thoughts.
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
from routing.types import CompletionRequest, CompletionResult, Usage

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_KEY_ENV = "GEMINI_API_KEY"


def build_payload(request: CompletionRequest, deployment: Deployment) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role in ("system", "developer"))
    contents: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role in ("system", "developer"):
            continue
        role = "model" if m.role == "assistant" else "user"
        contents.append({"role": role, "parts": [{"text": m.content}]})
    config: dict[str, Any] = {
        "maxOutputTokens": min(request.max_output_tokens, deployment.max_output_tokens)
    }
    temperature = request.temperature if request.temperature is not None else deployment.temperature
    if temperature is not None:
        config["temperature"] = temperature
    if request.json_schema is not None or deployment.json_output:
        config["responseMimeType"] = "application/json"
        if request.json_schema is not None:
            config["responseJsonSchema"] = request.json_schema
    if request.logprobs or deployment.logprobs:
        config["responseLogprobs"] = True
    body: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    return body


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict) or "promptTokenCount" not in raw:
        return None
    prompt = positive_int(raw.get("promptTokenCount"))
    thoughts = positive_int(raw.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=min(positive_int(raw.get("cachedContentTokenCount")), prompt),
        output_tokens=positive_int(raw.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
    )


def parse_response(raw: RawResponse, request: CompletionRequest) -> CompletionResult:
    body = raw.body
    assert isinstance(body, dict)
    usage = parse_usage(body.get("usageMetadata"))
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        feedback = body.get("promptFeedback") or {}
        block = feedback.get("blockReason") if isinstance(feedback, dict) else None
        why = f"no candidates (blockReason={block})" if block else "no candidates"
        raise bad_response("gemini", raw, why, usage)
    candidate = candidates[0]
    finish = str(candidate.get("finishReason") or "STOP")
    content = candidate.get("content") or {}
    parts = content.get("parts") if isinstance(content, dict) else None
    text = "".join(
        str(p.get("text", ""))
        for p in parts or []
        if isinstance(p, dict) and not p.get("thought")  # thinking summaries are not the answer
    )
    if finish in ("SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"):
        raise bad_response("gemini", raw, f"finishReason={finish}", usage)
    if not text.strip():
        raise bad_response("gemini", raw, f"empty text (finishReason={finish})", usage)
    if usage is None:  # not seen from the real API; count it ourselves and say so
        usage = Usage(
            input_tokens=count_message_tokens(request.messages, request.model),
            output_tokens=count_text_tokens(text, request.model),
            estimated=True,
        )
    logprobs = None
    result = candidate.get("logprobsResult")
    if isinstance(result, dict) and isinstance(result.get("chosenCandidates"), list):
        logprobs = [
            float(c.get("logProbability", 0.0))
            for c in result["chosenCandidates"]
            if isinstance(c, dict)
        ]
    finish_norm = {"STOP": "stop", "MAX_TOKENS": "length"}.get(finish, finish.lower())
    return CompletionResult(
        text=text,
        usage=usage,
        finish_reason=finish_norm,
        latency_ms=raw.latency_ms,
        request_id=body.get("responseId") or raw.headers.get("x-request-id"),
        token_logprobs=logprobs,
        raw_usage=body.get("usageMetadata") or {},
    )


class GeminiProvider:
    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        key = api_key(deployment, DEFAULT_KEY_ENV)
        base = (deployment.api_base or DEFAULT_BASE).rstrip("/")
        model = request.model.removeprefix("models/")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if key:
            headers["x-goog-api-key"] = key  # a header, never `?key=` in a URL that gets logged
        headers.update(deployment.extra_headers)
        raw = await post_json(
            "gemini",
            f"{base}/models/{model}:generateContent",
            headers=headers,
            params=dict(deployment.extra_query),
            payload=build_payload(request, deployment),
            deployment=deployment,
            request=request,
            secrets=(key,),
        )
        raise_for_status("gemini", raw, request, (key,))
        return parse_response(raw, request)
