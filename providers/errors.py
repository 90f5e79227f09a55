"""Failure classification, retry hints, backoff and secret redaction, shared by all adapters.

The worker owns the single retry layer; adapters only *classify* (docs/architecture.md's table) and report
the provider's retry hint. Everything here is a pure function so the policy is unit-testable.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from routing.types import ErrorClass

# Messages kept in the ledger are the provider's words, cut to a sane length.
MAX_MESSAGE_CHARS = 2000

TRANSIENT_STATUSES = frozenset({408, 409, 425, 500, 502, 503, 504, 520, 522, 524, 529})

# Words by which providers say "the prompt is longer than the model's window".
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "input token count",
    "reduce the length of the messages",
    "model_context_window_exceeded",
)

# 429s that no amount of waiting fixes: quota, billing, spend caps (langchainjs#1929).
# Codes are decisive; words only count when the 429 carries no retry hint, because Gemini words
# its ordinary per-minute 429s "You exceeded your current quota..." and adds a retryDelay.
_QUOTA_CODES = ("insufficient_quota", "enforced_spend_limit_reached", "billing_error")
_QUOTA_WORDS = (
    "exceeded your current quota",
    "billing",
    "spend limit",
    "credit balance",
    "check your plan",
)


def error_fields(body: Any) -> tuple[str, str, str]:
    """(message, type, code) from any provider's error body, flat or nested, int or str code.

    Shapes: OpenAI `{"error":{"message","type","code"}}`, Anthropic
    `{"type":"error","error":{"type","message"}}`, Gemini `{"error":{"code":429,"status",...}}`,
    old vLLM `{"object":"error","message","type","code":400}`, or a bare string.
    """
    if isinstance(body, str):
        return body, "", ""
    if not isinstance(body, Mapping):
        return "", "", ""
    inner = body.get("error", body)
    if isinstance(inner, str):
        return inner, str(body.get("type", "")), str(body.get("code", ""))
    if not isinstance(inner, Mapping):
        return "", "", ""
    message = str(inner.get("message") or inner.get("detail") or "")
    kind = str(inner.get("type") or inner.get("status") or "")
    code = str(inner.get("code") if inner.get("code") is not None else "")
    details = inner.get("details") or body.get("details")
    if isinstance(details, Mapping) and details.get("error_code"):
        code = f"{code} {details['error_code']}".strip()  # Anthropic spend-cap 429s
    return message, kind, code


def classify_status(status: int, body: Any, headers: Mapping[str, str] | None = None) -> ErrorClass:
    """The ErrorClass for a non-2xx response (docs/architecture.md, "What happens after each call")."""
    headers = headers or {}
    message, kind, code = error_fields(body)
    words = f"{message} {kind} {code}".lower()
    if status == 429:
        if any(code_ in words for code_ in _QUOTA_CODES):
            return ErrorClass.PERMANENT
        if any(word in words for word in _QUOTA_WORDS) and parse_retry_after(headers, body) is None:
            return ErrorClass.PERMANENT
        return ErrorClass.RATE_LIMITED
    if status in (400, 413, 422) and any(marker in words for marker in _CONTEXT_MARKERS):
        return ErrorClass.CONTEXT_LENGTH
    # The OpenAI and Anthropic SDKs let the server overrule the status (openai-python
    # _should_retry); we do the same, except that quota 429s above never retry.
    should_retry = str(headers.get("x-should-retry", "")).lower()
    if should_retry == "true":
        return ErrorClass.TRANSIENT
    if should_retry == "false" and status != 429:
        return ErrorClass.PERMANENT
    if status in TRANSIENT_STATUSES or status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


def parse_duration(text: str) -> float | None:
    """Go-style durations ("6m0s", "2s81ms", "30s", "1.5s") in seconds, as in rate-limit headers
    and Gemini's `retryDelay`. None for anything else."""
    text = text.strip()
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _seconds_until(stamp: str, now: datetime | None) -> float | None:
    now = now or datetime.now(UTC)
    when: datetime | None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(stamp)  # HTTP date, as Retry-After may be
        except (TypeError, ValueError):
            return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_retry_after(
    headers: Mapping[str, str], body: Any = None, *, now: datetime | None = None
) -> float | None:
    """The provider's "wait this long" hint in seconds, raw (the cap is backoff_delay's job).

    Order, as openai-python: `retry-after-ms` (float ms), `retry-after` (seconds or an HTTP date);
    then Gemini's `RetryInfo.retryDelay` in the body; then, for Anthropic 429s that carry
    `x-should-retry` but no Retry-After, the earliest reset of an exhausted limit (RFC 3339);
    then OpenAI's "Please try again in 26.604s" message. None when there is no hint.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            seconds = _seconds_until(value, now)
            if seconds is not None:
                return seconds
    delay = _gemini_retry_delay(body)
    if delay is not None:
        return delay
    resets = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        remaining = lowered.get(f"anthropic-ratelimit-{kind}-remaining")
        reset = lowered.get(f"anthropic-ratelimit-{kind}-reset")
        if reset and remaining is not None and remaining.strip() == "0":
            seconds = _seconds_until(reset, now)
            if seconds is not None:
                resets.append(seconds)
    if resets:
        return min(resets)
    message, _, _ = error_fields(body)
    match = _TRY_AGAIN.search(message)
    if match:
        number = float(match.group(1))
        return number / 1000.0 if match.group(2).lower() == "ms" else number
    return None


def _gemini_retry_delay(body: Any) -> float | None:
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), Mapping):
        return None
    for detail in body["error"].get("details") or []:
        if isinstance(detail, Mapping) and isinstance(detail.get("retryDelay"), str):
            return parse_duration(detail["retryDelay"])
    return None


def backoff_delay(
    retry_no: int,
    retry_after_s: float | None,
    *,
    base: float = 0.5,
    cap: float = 8.0,
    retry_after_cap: float = 120.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before retry number `retry_no` (0 = the first retry), or None.

    With a provider hint: the hint itself when in (0, retry_after_cap]; None when the hint is
    longer than the cap, meaning "do not retry on this deployment now" (cool it down, fall back).
    Without a hint: full jitter (AWS Architecture Blog), uniform in [0, min(cap, base * 2**n)],
    so that many workers hit by the same outage do not come back in lockstep.
    """
    if retry_after_s is not None and retry_after_s > 0:
        if retry_after_s > retry_after_cap:
            return None
        return float(retry_after_s)
    rng = rng or random.Random()
    ceiling = min(cap, base * (2 ** max(0, retry_no)))
    return rng.uniform(0.0, ceiling)


# Secrets that may appear in an exception text or an echoed request: header values, query keys,
# and the usual key shapes (sk-..., sk-ant-..., AIza..., gsk_..., Bearer ...).
# Masked keys a provider echoes back ("Incorrect API key provided: sk-proj-****abcd", "key
# abc123...defXYZ"): the visible ends are still part of a key, and two echoes of different
# masks can add up to most of it. They go first, before the shapes below take a piece each.
_MASKED_PATTERNS = [
    re.compile(r"\b(?:sk-(?:ant-|proj-)?|gsk_|fw_|pk-|xai-|AIza)[\w-]*(?:\*+|\.{3,}|…)[\w-]*"),
    re.compile(r"[\w-]*\*{3,}[\w-]*"),
    # An ellipsis between two runs of key characters, with a digit somewhere: a key, not prose.
    re.compile(r"\b(?=[\w-]*\d|[\w-]{3,}(?:\.{3}|…)[\w-]*\d)[\w-]{3,}(?:\.{3}|…)[\w-]{3,}"),
]
_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)((?:x-api-key|api-key|x-goog-api-key)\s*[\"']?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)([?&](?:key|api_key|api-key|apikey|access_token)=)[^&\s'\"]+"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b()(?:sk-(?:ant-|proj-)?|gsk_|fw_|pk-|xai-)[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b()AIza[0-9A-Za-z_-]{20,}"),
]
REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with API keys and credential-bearing header/query values replaced by [REDACTED].

    Known secrets (the key actually used for the call) are removed verbatim first; patterns
    catch keys we were not told about, e.g. a proxy echoing the request headers, and the
    masked fragments providers echo (`sk-...XYZ`, `abc123...defXYZ`, `sk-proj-****abcd`).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for masked in _MASKED_PATTERNS:
        text = masked.sub(REDACTED, text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def error_message(
    provider: str,
    status: int | None,
    body: Any,
    raw_text: str = "",
    secrets: Iterable[str | None] = (),
) -> str:
    """A one-line ledger message that keeps the provider's words and drops any key."""
    message, kind, code = error_fields(body)
    if not message:
        message = raw_text.strip() or (json.dumps(body)[:500] if body else "")
    parts = dict.fromkeys(p for p in (kind, code) if p and p not in message)  # dedupe, keep order
    label = " ".join(parts)
    head = f"{provider} HTTP {status}" if status is not None else provider
    text = f"{head} {label}: {message}" if label else f"{head}: {message}"
    return redact(text, secrets)[:MAX_MESSAGE_CHARS]
