"""Streamed answers: server-sent events in OpenAI's and Anthropic's formats.

The answer is cut into token pieces (o200k tokens, grouped so that each piece is whole UTF-8)
and sent one event per piece, paced like a real model: the first event after the sampled
latency (time to first token), then `per_output_token_ms` between pieces. The events copy the
vendors' documented streams, so the official SDKs' streaming helpers assemble the same text
and usage as from the non-streamed body:

- OpenAI: `chat.completion.chunk` objects (a role chunk, content chunks, a chunk with the
  finish reason; with `stream_options.include_usage`, a last chunk with empty `choices` and
  the usage, and `"usage": null` on the others), then `data: [DONE]`.
- Anthropic: `message_start` (input and cache usage), `content_block_start`, `ping`,
  `content_block_delta` (`text_delta`), `content_block_stop`, `message_delta` (stop reason
  and final usage), `message_stop`.

A stream can also fail after its 200, as real ones do: `truncated_body` ends it halfway
without the closing chunk, `malformed_json` sends a broken event halfway.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from providers.fake_server.formats import (
    Call,
    Outcome,
    anthropic_stop,
    anthropic_usage,
    openai_usage,
)
from routing.tokens import get_encoding


@dataclass(frozen=True)
class Event:
    data: bytes
    token: bool = False  # carries a piece of the answer: paced by the per-token latency


def pieces(text: str) -> list[str]:
    """The answer as streamed: o200k tokens, merged where one would split a UTF-8 character."""
    out: list[str] = []
    pending = b""
    for raw in get_encoding("o200k_base").decode_tokens_bytes(
        get_encoding("o200k_base").encode_ordinary(text)
    ):
        pending += raw
        try:
            out.append(pending.decode("utf-8"))
            pending = b""
        except UnicodeDecodeError:
            continue
    if pending:
        out.append(pending.decode("utf-8", errors="replace"))
    return out


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def openai_events(call: Call, out: Outcome) -> list[Event]:
    base = {
        "id": f"chatcmpl-{out.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    logprobs = iter(out.logprobs or [])

    def chunk(delta: dict[str, Any], finish: str | None = None, piece: str = "") -> dict:
        lp = None
        if out.logprobs is not None and piece:
            taken, size = [], 0
            while size < len(piece.encode()) and (item := next(logprobs, None)):
                taken.append(item)
                size += len(item[0].encode())
            lp = {
                "content": [
                    {"token": t, "logprob": v, "bytes": list(t.encode()), "top_logprobs": []}
                    for t, v in taken
                ],
                "refusal": None,
            }
        body = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}],
        }
        if call.stream_usage:
            body["usage"] = None
        return body

    events = [Event(_sse(chunk({"role": "assistant", "content": "", "refusal": None})))]
    events += [Event(_sse(chunk({"content": p}, piece=p)), True) for p in pieces(out.text)]
    events.append(Event(_sse(chunk({}, out.finish))))
    if call.stream_usage:
        events.append(Event(_sse({**base, "choices": [], "usage": openai_usage(out)})))
    events.append(Event(b"data: [DONE]\n\n"))
    return events


def anthropic_events(call: Call, out: Outcome) -> list[Event]:
    usage = anthropic_usage(out)
    message: dict[str, Any] = {
        "id": f"msg_{out.request_id}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},  # the real stream starts with a token or so
    }
    events = [Event(_sse({"type": "message_start", "message": message}, "message_start"))]
    if out.text:
        block = {"type": "text", "text": ""}
        start = {"type": "content_block_start", "index": 0, "content_block": block}
        events.append(Event(_sse(start, "content_block_start")))
        events.append(Event(_sse({"type": "ping"}, "ping")))
        for piece in pieces(out.text):
            delta = {"type": "content_block_delta", "index": 0}
            delta["delta"] = {"type": "text_delta", "text": piece}
            events.append(Event(_sse(delta, "content_block_delta"), True))
        stop = {"type": "content_block_stop", "index": 0}
        events.append(Event(_sse(stop, "content_block_stop")))
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": anthropic_stop(out), "stop_sequence": None},
        "usage": {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")},
    }
    events.append(Event(_sse(final, "message_delta")))
    events.append(Event(_sse({"type": "message_stop"}, "message_stop")))
    return events


def broken(events: list[Event], kind: str | None) -> tuple[list[Event], bool]:
    """(the events to send, whether to end without the closing chunk) for an injected failure
    after the 200: `truncated_body` stops halfway, `malformed_json` breaks the middle event."""
    half = len(events) // 2
    if kind == "truncated_body":
        return events[:half], True
    if kind == "malformed_json":
        return [*events[:half], Event(b'data: {"choices": [{"delta": \n\n'), *events[half:]], False
    return events, False


async def paced(events: list[Event], first_s: float, per_token_s: float) -> AsyncIterator[bytes]:
    """The events, the first after `first_s`, each answer piece `per_token_s` after the last."""
    if first_s > 0:
        await asyncio.sleep(first_s)
    for event in events:
        if event.token and per_token_s > 0:
            await asyncio.sleep(per_token_s)
        yield event.data
