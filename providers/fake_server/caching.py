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

from providers.fake_server.formats import TTLS, Call
from routing.tokens import get_encoding

MIN_TOKENS = 1024  # OpenAI's minimum, and Anthropic's for Sonnet and Opus
_STEP = 128  # OpenAI reports cached tokens in 128-token steps
_TTL_S = dict(zip(TTLS, (300.0, 3600.0), strict=True))  # seconds a cache entry lives
_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class CacheUse:
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0


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
