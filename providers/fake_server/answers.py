"""What the fake model answers: the text its answer rule gives, cut at the output allowance,
with the usage a real provider would report for it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from providers.fake_server.caching import CacheUse
from providers.fake_server.config import FakeServerConfig
from providers.fake_server.formats import Call, Outcome, value_for_schema
from routing.tokens import get_encoding


def compose(
    config: FakeServerConfig, call: Call, prompt_tokens: int, use: CacheUse, rid: str, empty: bool
) -> Outcome:
    """The answer to `call`: its text (cut at max_tokens), token counts, logprobs and cache use.
    `empty`: a reasoning model that spent its whole allowance thinking (billed, no text)."""
    reasoning = config.reasoning_tokens
    cached = use.read
    writes = {"cache_write_5m": use.write_5m, "cache_write_1h": use.write_1h}
    if empty:
        # A reasoning model that spent its whole allowance thinking: billed, no text.
        return Outcome(
            "",
            prompt_tokens,
            cached,
            call.max_tokens,
            call.max_tokens,
            "length",
            [] if call.logprobs else None,
            rid,
            **writes,
        )
    text = answer_text(config, call)
    enc = get_encoding("o200k_base")
    ids = enc.encode_ordinary(text)
    room = max(0, call.max_tokens - reasoning)
    finish: Any = "stop"
    if len(ids) > room:
        ids, finish = ids[:room], "length"
        text = enc.decode(ids)
    logprobs = None
    if call.logprobs:
        logprobs = [(enc.decode([i]), -round(((i * 2654435761) % 1000) / 10000, 4)) for i in ids]
    return Outcome(
        text,
        prompt_tokens,
        cached,
        len(ids) + reasoning,
        reasoning,
        finish,
        logprobs,
        rid,
        **writes,
    )


def answer_text(config: FakeServerConfig, call: Call) -> str:
    """The configured answer rule applied to the last user message."""
    rule = config.answer_for(call.model)
    source = next((m["content"] for m in reversed(call.messages) if m["role"] == "user"), "")
    if rule.mode == "fixed":
        text = rule.text
    elif rule.mode == "echo":
        text = source
    elif rule.mode == "summary":
        text = " ".join(source.split()[: rule.words])
    else:
        digest = hashlib.sha256(source.encode()).digest()
        text = rule.labels[int.from_bytes(digest[:4], "big") % len(rule.labels)]
    if call.json_schema is not None:
        return json.dumps(value_for_schema(call.json_schema, text))
    if call.json_mode:
        return json.dumps({"answer": text})
    return text
