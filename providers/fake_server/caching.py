"""Prompt caching as the providers report it in usage.

OpenAI and Gemini cache implicitly: a repeated prefix of 1024+ tokens is reported as cached
input, in 128-token steps. Anthropic caches only what the request marks: the prompt up to the
last block with `cache_control` is written on first sight (`cache_creation_input_tokens`, split
5-minute / 1-hour by its `ttl`) and read while it lives (`cache_read_input_tokens`); a read
refreshes its lifetime. Prefixes shorter than the minimum are neither written nor read.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from routing.tokens import get_encoding

if TYPE_CHECKING:
    from providers.fake_server.formats import Call

MIN_TOKENS = 1024  # OpenAI's minimum, and Anthropic's for Sonnet and Opus
_STEP = 128  # OpenAI reports cached tokens in 128-token steps
_TTL_S = {"5m": 300.0, "1h": 3600.0}
_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class CacheUse:
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0


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
    return "\n".join(texts[: mark[0]]), mark[1] if mark[1] in _TTL_S else "5m"


class PromptCache:
    """What one server has cached; one event loop, so no locking."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}  # prefix key -> monotonic time it lapses

    def clear(self) -> None:
        self.expiry.clear()

    def _seen(self, key: str, ttl_s: float) -> bool:
        """Whether `key` is cached now; it is (re)cached for `ttl_s` either way."""
        now = time.monotonic()
        hit = self.expiry.get(key, 0.0) > now
        if len(self.expiry) > _MAX_ENTRIES:
            self.expiry.clear()
        self.expiry[key] = now + ttl_s
        return hit

    def use(self, call: Call, prompt_tokens: int) -> CacheUse:
        if call.fmt == "anthropic":
            return self._explicit(call, prompt_tokens)
        return CacheUse(read=self._implicit(call, prompt_tokens))

    def _implicit(self, call: Call, prompt_tokens: int) -> int:
        """OpenAI/Gemini: the first message, when 1024+ tokens long and seen before."""
        if not call.messages:
            return 0
        first = call.messages[0]["content"]
        prefix = len(get_encoding("o200k_base").encode_ordinary(first)) + 4
        if prefix < MIN_TOKENS:
            return 0
        key = hashlib.sha256(f"{call.model}\0{first}".encode()).hexdigest()
        if not self._seen(key, _TTL_S["5m"]):
            return 0
        return min(prompt_tokens, prefix) // _STEP * _STEP

    def _explicit(self, call: Call, prompt_tokens: int) -> CacheUse:
        if call.cache_breakpoint is None:
            return CacheUse()
        text, ttl = call.cache_breakpoint
        tokens = min(prompt_tokens, len(get_encoding("o200k_base").encode_ordinary(text)) + 4)
        if tokens < MIN_TOKENS:
            return CacheUse()
        key = hashlib.sha256(f"anthropic\0{call.model}\0{text}".encode()).hexdigest()
        if self._seen(key, _TTL_S[ttl]):
            return CacheUse(read=tokens)
        return CacheUse(write_1h=tokens) if ttl == "1h" else CacheUse(write_5m=tokens)
