"""OpenAI Chat Completions over httpx, for OpenAI and the servers that speak its format.

Each server differs in small ways (which parameters it rejects, how it names the output limit,
how it authenticates); a `Profile` holds those quirks. The profile is chosen per deployment:
`deployment.profile` if set, else its `provider` name, else plain OpenAI.
The adapter makes exactly one HTTP call and never retries: the worker owns retries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

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


@dataclass(frozen=True)
class Profile:
    name: str
    base_url: str | None  # default api_base; None: the deployment must give one
    key_env: str | None  # default key variable; None: no credentials (local servers)
    auth_header: str = "authorization"  # "authorization" (Bearer) or "api-key" (Azure)
    max_tokens_field: str = "max_tokens"  # OpenAI itself: max_completion_tokens
    logprobs: Literal["bool", "int", "none"] = "bool"  # Together takes an int; Groq rejects it
    json_mode: Literal["json_schema", "json_object", "none"] = "json_schema"
    reasoning_rules: bool = False  # o-series/gpt-5: no temperature, no logprobs


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            max_tokens_field="max_completion_tokens",
            reasoning_rules=True,
        ),
        Profile(
            "azure_openai",
            None,  # https://{resource}.openai.azure.com/openai/deployments/{deployment}
            "AZURE_OPENAI_API_KEY",
            auth_header="api-key",
            max_tokens_field="max_completion_tokens",
            reasoning_rules=True,
        ),
        Profile("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", logprobs="int"),
        # Groq answers 400 to logprobs, top_logprobs, logit_bias and messages[].name.
        Profile(
            "groq",
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            logprobs="none",
            json_mode="json_object",
        ),
        Profile("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        # DeepSeek has JSON mode but no json_schema; it reports cache hits in its own fields.
        Profile(
            "deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", json_mode="json_object"
        ),
        Profile("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        Profile("vllm", "http://127.0.0.1:8000/v1", None),
        Profile("llamacpp", "http://127.0.0.1:8080/v1", None),
        Profile("ollama", "http://127.0.0.1:11434/v1", None, logprobs="none"),
    )
}

_REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))")
AZURE_DEFAULT_API_VERSION = "2024-10-21"


def profile_for(deployment: Deployment) -> Profile:
    name = deployment.profile or deployment.provider
    return PROFILES.get(name, PROFILES["openai"])


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1].lower()))


def build_payload(
    request: CompletionRequest, deployment: Deployment, profile: Profile
) -> dict[str, Any]:
    """The JSON body, with the profile's quirks applied (unsupported parameters left out)."""
    reasoning = profile.reasoning_rules and is_reasoning_model(request.model)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        profile.max_tokens_field: min(request.max_output_tokens, deployment.max_output_tokens),
    }
    temperature = request.temperature if request.temperature is not None else deployment.temperature
    if temperature is not None and not reasoning:
        body["temperature"] = temperature
    if (request.logprobs or deployment.logprobs) and not reasoning:
        if profile.logprobs == "bool":
            body["logprobs"] = True
        elif profile.logprobs == "int":
            body["logprobs"] = 1
    if request.json_schema is not None and profile.json_mode == "json_schema":
        strict = request.json_schema.get("additionalProperties") is False
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.json_schema, "strict": strict},
        }
    elif (
        request.json_schema is not None or deployment.json_output
    ) and profile.json_mode != "none":
        body["response_format"] = {"type": "json_object"}
        # OpenAI answers 400 to json_object when no message mentions JSON; make sure one does.
        if not any("json" in m.content.lower() for m in request.messages):
            body["messages"].insert(0, {"role": "system", "content": "Respond in JSON."})
    return body


def parse_usage(raw: Any) -> Usage | None:
    """OpenAI usage: `cached_tokens` is inside `prompt_tokens`, `reasoning_tokens` inside
    `completion_tokens`, so both map straight onto the normalised Usage. Details are optional.
    DeepSeek reports `prompt_cache_hit_tokens` instead of `prompt_tokens_details`."""
    if not isinstance(raw, dict) or "prompt_tokens" not in raw:
        return None
    prompt = positive_int(raw.get("prompt_tokens"))
    details = raw.get("prompt_tokens_details") or {}
    cached = positive_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    if not cached:
        cached = positive_int(raw.get("prompt_cache_hit_tokens"))
    out_details = raw.get("completion_tokens_details") or {}
    reasoning = (
        positive_int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    )
    completion = positive_int(raw.get("completion_tokens"))
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=min(cached, prompt),
        output_tokens=completion,
        reasoning_tokens=min(reasoning, completion),
    )


def _logprobs(choice: dict[str, Any]) -> list[float] | None:
    block = choice.get("logprobs")
    if not isinstance(block, dict):
        return None
    if isinstance(block.get("content"), list):  # OpenAI: content[].logprob
        return [float(t["logprob"]) for t in block["content"] if isinstance(t, dict)]
    if isinstance(block.get("token_logprobs"), list):  # Together, legacy completions
        return [float(x) for x in block["token_logprobs"] if isinstance(x, int | float)]
    return None


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return None


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def go_duration_s(text: str) -> float | None:
    """OpenAI's reset times are Go durations: "6m0s", "2s81ms", "20ms"."""
    parts = _GO_DURATION.findall(text or "")
    if not parts:
        return None
    return sum(float(value) * _UNIT_S[unit] for value, unit in parts)


def rate_limit_headers(headers: Any) -> dict[str, float] | None:
    """`x-ratelimit-{remaining,reset}-{requests,tokens}` as numbers (negative values, which Azure
    may send, are left out); None when the server sent none (vLLM, Ollama, ...)."""
    found: dict[str, float] = {}
    for what in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{what}")
        try:
            if remaining is not None and float(remaining) >= 0:
                found[f"{what}_remaining"] = float(remaining)
        except ValueError:
            pass
        reset = go_duration_s(headers.get(f"x-ratelimit-reset-{what}") or "")
        if reset is not None:
            found[f"{what}_reset_s"] = reset
    return found or None


def parse_response(
    raw: RawResponse, request: CompletionRequest, provider: str = "openai"
) -> CompletionResult:
    """A CompletionResult from a 200 body, or a BAD_RESPONSE ProviderError (billed as reported)."""
    body = raw.body
    assert isinstance(body, dict)
    usage = parse_usage(body.get("usage"))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise bad_response(provider, raw, "no choices in the response", usage)
    choice = choices[0]
    message = choice.get("message")
    finish = str(choice.get("finish_reason") or "stop")
    if not isinstance(message, dict):
        raise bad_response(provider, raw, "choice has no message", usage)
    text = _text(message.get("content"))
    if message.get("refusal"):
        raise bad_response(provider, raw, f"refusal: {message['refusal']}"[:500], usage)
    if finish == "content_filter":
        raise bad_response(provider, raw, "finish_reason=content_filter", usage)
    if text is None or not text.strip():
        why = "empty content"
        if finish == "length":
            why += " (finish_reason=length: the output allowance was used up, e.g. by reasoning)"
        raise bad_response(provider, raw, why, usage)
    if usage is None:
        # Some local servers omit usage; count it ourselves and say so.
        usage = Usage(
            input_tokens=count_message_tokens(request.messages, request.model),
            output_tokens=count_text_tokens(text, request.model),
            estimated=True,
        )
    return CompletionResult(
        text=text,
        usage=usage,
        finish_reason=finish,
        latency_ms=raw.latency_ms,
        request_id=raw.headers.get("x-request-id") or body.get("id"),
        token_logprobs=_logprobs(choice),
        raw_usage=body.get("usage") if isinstance(body.get("usage"), dict) else {},
        rate_limit=rate_limit_headers(raw.headers),
    )


@dataclass(frozen=True)
class Target:
    """Where and how to call a deployment: shared by completions and the batch client."""

    profile: Profile
    base: str  # e.g. https://api.openai.com/v1 (no trailing slash)
    headers: dict[str, str]
    params: dict[str, str]
    key: str | None  # for redaction only


def target_for(deployment: Deployment) -> Target:
    profile = profile_for(deployment)
    key = api_key(deployment, profile.key_env)
    base = (deployment.api_base or profile.base_url or "").rstrip("/")
    if not base:
        raise ProviderError(ErrorClass.PERMANENT, f"{profile.name}: deployment needs an api_base")
    headers = {"content-type": "application/json", "accept": "application/json"}
    if key:
        if profile.auth_header == "authorization":
            headers["authorization"] = f"Bearer {key}"
        else:
            headers[profile.auth_header] = key
    headers.update(deployment.extra_headers)
    params = dict(deployment.extra_query)
    if profile.name == "azure_openai":
        params.setdefault("api-version", AZURE_DEFAULT_API_VERSION)
    return Target(profile, base, headers, params, key)


class OpenAICompatProvider:
    """Provider for `openai`, `azure_openai` and the OpenAI-compatible servers in PROFILES."""

    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        target = target_for(deployment)
        profile, key = target.profile, target.key
        payload = build_payload(request, deployment, profile)
        raw = await post_json(
            profile.name,
            f"{target.base}/chat/completions",
            headers=target.headers,
            params=target.params,
            payload=payload,
            deployment=deployment,
            request=request,
            secrets=(key,),
        )
        raise_for_status(profile.name, raw, request, (key,))
        return parse_response(raw, request, profile.name)
