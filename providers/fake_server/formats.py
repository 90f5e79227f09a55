"""The three wire formats the fake server speaks: request parsing, answers and error bodies.

Bodies copy the real APIs' shapes (as the vendors document them), so the official
SDKs and our adapters parse them exactly as they would parse the real thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["openai", "anthropic", "gemini"]


class BadCall(ValueError):
    """The request is not valid for its format: answered with that format's 400."""


@dataclass
class Call:
    fmt: Format
    model: str
    messages: list[dict[str, str]]  # role/content, system first, in OpenAI's vocabulary
    max_tokens: int
    logprobs: bool = False
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    text: str
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int  # including reasoning
    reasoning_tokens: int
    finish: Literal["stop", "length"]
    logprobs: list[tuple[str, float]] | None
    request_id: str


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks / parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if content is None:
        return ""
    raise BadCall("message content must be a string or a list of parts")


def parse_openai(body: Any) -> Call:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BadCall("'messages' is a required property")
    if not body.get("model"):
        raise BadCall("you must provide a model parameter")
    messages = [
        {"role": str(m.get("role", "user")), "content": _text_of(m.get("content"))}
        for m in body["messages"]
        if isinstance(m, dict)
    ]
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
    return Call(
        "openai",
        str(body["model"]),
        messages,
        int(limit),
        logprobs=bool(body.get("logprobs")),
        json_schema=schema,
        json_mode=isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"),
    )


def parse_anthropic(body: Any) -> Call:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BadCall("messages: Field required")
    if not isinstance(body.get("max_tokens"), int):
        raise BadCall("max_tokens: Field required")
    if not body.get("model"):
        raise BadCall("model: Field required")
    messages = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text_of(body["system"])})
    messages += [
        {"role": str(m.get("role", "user")), "content": _text_of(m.get("content"))}
        for m in body["messages"]
        if isinstance(m, dict)
    ]
    fmt = (body.get("output_config") or {}).get("format") or {}
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    return Call("anthropic", str(body["model"]), messages, body["max_tokens"], json_schema=schema)


def parse_gemini(model: str, body: Any) -> Call:
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        raise BadCall("* GenerateContentRequest.contents: contents is not specified")
    messages = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, dict):
        messages.append({"role": "system", "content": _text_of(system.get("parts"))})
    for item in body["contents"]:
        if isinstance(item, dict):
            role = "assistant" if item.get("role") == "model" else "user"
            messages.append({"role": role, "content": _text_of(item.get("parts"))})
    config = body.get("generationConfig") or {}
    return Call(
        "gemini",
        model,
        messages,
        int(config.get("maxOutputTokens") or 8192),
        logprobs=bool(config.get("responseLogprobs")),
        json_schema=config.get("responseJsonSchema") or config.get("responseSchema"),
        json_mode=config.get("responseMimeType") == "application/json",
    )


def success_body(call: Call, out: Outcome) -> dict[str, Any]:
    if call.fmt == "openai":
        logprobs = None
        if out.logprobs is not None:
            logprobs = {
                "content": [
                    {
                        "token": tok,
                        "logprob": lp,
                        "bytes": list(tok.encode()),
                        "top_logprobs": [],
                    }
                    for tok, lp in out.logprobs
                ],
                "refusal": None,
            }
        return {
            "id": f"chatcmpl-{out.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": out.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": logprobs,
                    "finish_reason": out.finish,
                }
            ],
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.output_tokens,
                "total_tokens": out.prompt_tokens + out.output_tokens,
                "prompt_tokens_details": {"cached_tokens": out.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": out.reasoning_tokens,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
    if call.fmt == "anthropic":
        return {
            "id": f"msg_{out.request_id}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [{"type": "text", "text": out.text}] if out.text else [],
            "stop_reason": "end_turn" if out.finish == "stop" else "max_tokens",
            "stop_sequence": None,
            "usage": {
                # Anthropic's input_tokens excludes cache reads and writes.
                "input_tokens": out.prompt_tokens - out.cached_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": out.cached_tokens,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": out.output_tokens,
                "service_tier": "standard",
            },
        }
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": out.text}] if out.text else [], "role": "model"},
        "finishReason": "STOP" if out.finish == "stop" else "MAX_TOKENS",
        "index": 0,
    }
    if out.logprobs is not None:
        chosen = [{"token": tok, "logProbability": lp} for tok, lp in out.logprobs]
        candidate["logprobsResult"] = {"topCandidates": [], "chosenCandidates": chosen}
        candidate["avgLogprobs"] = sum(lp for _, lp in out.logprobs) / max(1, len(out.logprobs))
    usage: dict[str, Any] = {
        "promptTokenCount": out.prompt_tokens,
        # Gemini's candidatesTokenCount excludes thinking tokens.
        "candidatesTokenCount": out.output_tokens - out.reasoning_tokens,
        "totalTokenCount": out.prompt_tokens + out.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": out.prompt_tokens}],
    }
    if out.reasoning_tokens:
        usage["thoughtsTokenCount"] = out.reasoning_tokens
    if out.cached_tokens:
        usage["cachedContentTokenCount"] = out.cached_tokens
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": call.model,
        "responseId": out.request_id,
    }


# (status, openai (type, code, message), anthropic (type, message), gemini (status, message))
_ERRORS: dict[
    str, tuple[int, tuple[str, str | None, str], tuple[str, str], tuple[int, str, str]]
] = {
    "rate_limit": (
        429,
        (
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for {model} in organization "
            "org-fake on requests per min (RPM): Limit {limit}, Used {limit}, Requested 1. Please "
            "try again in {retry}s. Visit https://platform.openai.com/account/rate-limits to learn "
            "more.",
        ),
        (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization "
            "of {limit} requests per minute. Please try again later.",
        ),
        (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    ),
    "quota": (
        429,
        (
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        ("rate_limit_error", "You have reached your specified API usage limits (spend limit)."),
        (
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
    ),
    "server_error": (
        500,
        (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        ("api_error", "Internal server error"),
        (500, "INTERNAL", "An internal error has occurred. Please retry or report it."),
    ),
    "unavailable": (
        503,
        ("server_error", None, "Slow Down: the engine is currently overloaded."),
        ("api_error", "Service unavailable"),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ),
    "overloaded": (
        529,
        ("server_error", None, "The engine is currently overloaded, please try again later."),
        ("overloaded_error", "Overloaded"),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ),
    "timeout": (
        408,
        ("timeout", None, "Request timed out."),
        ("timeout_error", "Request timed out"),
        (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    ),
    "bad_request": (
        400,
        ("invalid_request_error", None, "{detail}"),
        ("invalid_request_error", "{detail}"),
        (400, "INVALID_ARGUMENT", "{detail}"),
    ),
    "auth": (
        401,
        (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided. You can find "
            "your API key at https://platform.openai.com/account/api-keys.",
        ),
        ("authentication_error", "invalid x-api-key"),
        (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    ),
    "not_found": (
        404,
        (
            "invalid_request_error",
            "model_not_found",
            "The model `{model}` does not exist or you do not have access to it.",
        ),
        ("not_found_error", "model: {model}"),
        (404, "NOT_FOUND", "models/{model} is not found for API version v1beta."),
    ),
    "context_length": (
        400,
        (
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context "
            "length is {window} tokens. However, your messages resulted in {tokens} tokens. "
            "Please reduce the length of the messages.",
        ),
        ("invalid_request_error", "prompt is too long: {tokens} tokens > {window} maximum"),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count ({tokens}) exceeds the maximum number "
            "of tokens allowed ({window}).",
        ),
    ),
}


def error_body(fmt: Format, kind: str, request_id: str, **info: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) of an error of `kind` in format `fmt`, with `info` filled into the text."""
    info.setdefault("detail", "Invalid request.")
    info.setdefault("model", "unknown")
    status, openai, anthropic, gemini = _ERRORS[kind]
    if fmt == "openai":
        kind_, code, message = openai
        param = "messages" if kind == "context_length" else None
        return status, {
            "error": {
                "message": message.format(**info),
                "type": kind_,
                "param": param,
                "code": code,
            }
        }
    if fmt == "anthropic":
        kind_, message = anthropic
        error: dict[str, Any] = {"type": kind_, "message": message.format(**info)}
        body: dict[str, Any] = {"type": "error", "error": error, "request_id": f"req_{request_id}"}
        if kind == "quota":
            error["details"] = {"error_code": "enforced_spend_limit_reached"}
        return (504 if kind == "timeout" else status), body  # Anthropic: 504 timeout_error
    gcode, gstatus, message = gemini
    details: list[dict[str, Any]] = []
    if kind == "rate_limit":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{info.get('retry', 1)}s",
            }
        )
    if kind == "auth":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        )
    error = {"code": gcode, "message": message.format(**info), "status": gstatus}
    if details:
        error["details"] = details
    return gcode, {"error": error}


def value_for_schema(schema: Any, text: str) -> Any:
    """A small value that satisfies common JSON schemas, with `text` in the string slots."""
    if not isinstance(schema, dict):
        return text
    if "enum" in schema and schema["enum"]:
        return text if text in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: value_for_schema(sub, text) for name, sub in props.items()} or {
            "answer": text
        }
    if kind == "array":
        return [value_for_schema(schema.get("items") or {}, text)]
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return True
    return text
