"""The three wire formats the fake server speaks: request parsing, answers and error bodies.

Bodies copy the real APIs' shapes (as the vendors document them), so the official
SDKs and our adapters parse them exactly as they would parse the real thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["openai", "anthropic", "gemini"]
TTLS = ("5m", "1h")  # Anthropic's cache lifetimes


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
    stream: bool = False  # answer as server-sent events (streaming.py)
    stream_usage: bool = False  # OpenAI: stream_options.include_usage, a last chunk with usage
    cache_breakpoint: tuple[str, str] | None = None  # Anthropic: (marked prefix, ttl)


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
    cache_write_5m: int = 0  # Anthropic cache writes, part of prompt_tokens
    cache_write_1h: int = 0


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
        stream=body.get("stream") is True,
        stream_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


def anthropic_breakpoint(body: dict[str, Any]) -> tuple[str, str] | None:
    """(the text up to and including the last block marked `cache_control`, its ttl), or None
    when nothing is marked. Order as the API caches: system, then messages."""
    texts: list[str] = []
    mark: tuple[int, str] | None = None
    system = body.get("system")
    blocks: list[Any] = list(system) if isinstance(system, list) else [system]
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        blocks += content if isinstance(content, list) else [content]
    for block in blocks:
        if isinstance(block, dict):
            texts.append(str(block.get("text", "")))
            control = block.get("cache_control")
            if isinstance(control, dict):
                mark = (len(texts), str(control.get("ttl", "5m")))
        elif isinstance(block, str):
            texts.append(block)
    if mark is None:
        return None
    return "\n".join(texts[: mark[0]]), mark[1] if mark[1] in TTLS else "5m"


def parse_anthropic(body: Any, *, count_only: bool = False) -> Call:
    """A Messages request; `count_only` for /v1/messages/count_tokens (no max_tokens)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BadCall("messages: Field required")
    if not count_only and not isinstance(body.get("max_tokens"), int):
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
    return Call(
        "anthropic",
        str(body["model"]),
        messages,
        int(body.get("max_tokens") or 0),
        json_schema=schema,
        stream=body.get("stream") is True,
        cache_breakpoint=anthropic_breakpoint(body),
    )


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


def anthropic_usage(out: Outcome) -> dict[str, Any]:
    """Anthropic's usage block: input_tokens excludes cache reads and writes."""
    written = out.cache_write_5m + out.cache_write_1h
    return {
        "input_tokens": out.prompt_tokens - out.cached_tokens - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": out.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": out.cache_write_5m,
            "ephemeral_1h_input_tokens": out.cache_write_1h,
        },
        "output_tokens": out.output_tokens,
        "service_tier": "standard",
    }


def openai_usage(out: Outcome) -> dict[str, Any]:
    return {
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
    }


def anthropic_stop(out: Outcome) -> str:
    return "end_turn" if out.finish == "stop" else "max_tokens"


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
            "usage": openai_usage(out),
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
            "stop_reason": anthropic_stop(out),
            "stop_sequence": None,
            "usage": anthropic_usage(out),
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
