"""Plain data that flows through the routing core: requests, results, usage, errors.

No Celery, no database, no network here: everything in `routing/` is pure so it can be
unit-tested in milliseconds and reused by replay and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Message(BaseModel):
    role: str  # "system" | "user" | "assistant"
    content: str


class RequestMeta(BaseModel):
    """What the router knows about the item; never sent over the wire to a provider.

    The offline `sim` provider and the `replay` provider read it to answer deterministically.
    """

    item_key: str = ""  # the producer's id, stable across runs of the same input
    expected: str | None = None  # the gold answer, when the producer supplied one
    labels: list[str] = Field(default_factory=list)  # allowed labels, for classification tasks
    attempt_no: int = 1
    # Which answer of this deployment a consensus asks for: 0 the first, j the (j+1)-th sample.
    # Samples differ in the response-cache key, and replay serves the table's j-th answer.
    sample: int = 0


class CompletionRequest(BaseModel):
    deployment: str
    model: str
    messages: list[Message]
    max_output_tokens: int = 512
    temperature: float | None = None
    json_schema: dict | None = None  # ask for JSON output where the provider supports it
    logprobs: bool = False
    meta: RequestMeta = Field(default_factory=RequestMeta)


class Usage(BaseModel):
    """Token usage normalised across providers.

    `input_tokens` is the whole prompt, cached reads and cache writes included (OpenAI's
    `prompt_tokens`; Anthropic's `input_tokens + cache_creation + cache_read`). `output_tokens`
    includes reasoning/thinking tokens, which are billed as output everywhere.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0  # subset of input_tokens read from the provider's cache
    cache_write_tokens: int = 0  # subset of input_tokens written to the cache
    output_tokens: int = 0
    reasoning_tokens: int = 0  # subset of output_tokens
    estimated: bool = False  # True when counted by us, not reported by the provider


class CompletionResult(BaseModel):
    text: str
    usage: Usage
    finish_reason: str = "stop"
    latency_ms: float = 0.0
    request_id: str | None = None
    token_logprobs: list[float] | None = None
    raw_usage: dict = Field(default_factory=dict)
    # A cost recorded elsewhere (the replay provider's `cost_usd` column): when set, it is the
    # attempt's cost instead of usage x prices.
    cost_usd_override: float | None = Field(default=None, ge=0)
    # What the provider's rate-limit headers said (requests_remaining, tokens_remaining,
    # requests_reset_s, tokens_reset_s); None when it sent none. Feeds the global limiter.
    rate_limit: dict | None = None


class ErrorClass(StrEnum):
    """What kind of failure a provider call ended in; the policy decides what follows."""

    TRANSIENT = "transient"  # 408, 409, 5xx, 529, timeouts, connection: retry with backoff
    RATE_LIMITED = "rate_limited"  # 429 with a retry hint: wait, then retry
    PERMANENT = "permanent"  # 400, 401, 403, 404, quota: no retry on this deployment
    CONTEXT_LENGTH = "context_length"  # prompt too long for the window: a larger model
    BAD_RESPONSE = "bad_response"  # 200 with an empty, truncated or malformed body
    INTERNAL = "internal"  # a bug or an unexpected exception on our side


class ProviderError(Exception):
    """A failed provider call, classified. `billed_usage` is set when the provider bills it."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        billed_usage: Usage | None = None,
        latency_ms: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.billed_usage = billed_usage
        self.latency_ms = latency_ms

    def __repr__(self) -> str:
        return f"ProviderError({self.error_class.value}, {self.status_code}, {self.message!r})"


@dataclass(frozen=True)
class InputItem:
    """One line of a producer's input, as read and checked; the ledger stores it as an item."""

    external_id: str
    text: str
    line_no: int
    expected: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
