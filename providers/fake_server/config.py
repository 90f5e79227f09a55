"""Configuration of the fake provider server (pydantic; loadable from YAML or JSON).

Example (YAML):

    latency: {distribution: lognormal, ms: 800, spread: 0.4, per_output_token_ms: 2}
    errors: {rate_limit: 0.02, server_error: 0.01, overloaded: 0.01, hang: 0.001}
    limits: {rpm: 600, tpm: 200000}
    answer: {mode: summary, words: 30}
    answers: {"claude-*": {mode: fixed, text: billing}}
    batch: {processing_s: 5, expire_fraction: 0.1}
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Every error the server can inject, by the name used in `errors:` and in the `x-fake-error`
# request header (which forces one kind on one request, for tests).
ERROR_KINDS = (
    "rate_limit",  # 429 with Retry-After / retry-after-ms and the provider's real body
    "quota",  # 429 insufficient_quota (OpenAI) / spend limit (Anthropic): not retryable
    "server_error",  # 500
    "unavailable",  # 503
    "overloaded",  # 529 (Anthropic's overloaded_error; 503 UNAVAILABLE in Gemini's format)
    "timeout",  # 408 (OpenAI), 504 timeout_error (Anthropic), 504 DEADLINE_EXCEEDED (Gemini)
    "bad_request",  # 400
    "auth",  # 401 (Gemini: 400 API_KEY_INVALID, as the real API)
    "not_found",  # 404 unknown model
    "context_length",  # 400 context_length_exceeded (also sent for real when the prompt is too long)
    "hang",  # accept the request, never answer (until hang_s or the client hangs up)
    "malformed_json",  # 200 with a body that is not JSON
    "empty_content",  # 200, well-formed, with empty text (finish_reason length), usage billed
    "truncated_body",  # 200 whose Content-Length promises more than is sent before closing
)

_Strict = ConfigDict(extra="forbid")


class LatencyConfig(BaseModel):
    model_config = _Strict

    distribution: Literal["fixed", "uniform", "normal", "lognormal", "exponential"] = "fixed"
    ms: float = Field(default=0.0, ge=0)  # fixed value; median (lognormal); mean (others)
    spread: float = Field(default=0.5, ge=0)  # lognormal sigma; normal sd / ms; uniform +-/ms
    min_ms: float = Field(default=0.0, ge=0)
    max_ms: float = Field(default=600_000.0, ge=0)
    per_output_token_ms: float = Field(default=0.0, ge=0)  # generation time, added on top


class ErrorsConfig(BaseModel):
    """Fractions of requests that fail each way (drawn independently per request; sum <= 1)."""

    model_config = _Strict

    rate_limit: float = Field(default=0.0, ge=0, le=1)
    quota: float = Field(default=0.0, ge=0, le=1)
    server_error: float = Field(default=0.0, ge=0, le=1)
    unavailable: float = Field(default=0.0, ge=0, le=1)
    overloaded: float = Field(default=0.0, ge=0, le=1)
    timeout: float = Field(default=0.0, ge=0, le=1)
    bad_request: float = Field(default=0.0, ge=0, le=1)
    auth: float = Field(default=0.0, ge=0, le=1)
    not_found: float = Field(default=0.0, ge=0, le=1)
    context_length: float = Field(default=0.0, ge=0, le=1)
    hang: float = Field(default=0.0, ge=0, le=1)
    malformed_json: float = Field(default=0.0, ge=0, le=1)
    empty_content: float = Field(default=0.0, ge=0, le=1)
    truncated_body: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0)  # what injected 429s tell the client
    hang_s: float = Field(default=600.0, ge=0)  # how long a hang lasts if the client waits

    @model_validator(mode="after")
    def _sum_at_most_one(self) -> ErrorsConfig:
        total = sum(getattr(self, kind) for kind in ERROR_KINDS)
        if total > 1.0 + 1e-9:
            raise ValueError(f"error fractions add up to {total:.3f}; they must be <= 1")
        return self


class LimitsConfig(BaseModel):
    """Per-model limits, enforced with real 429s. A token bucket per limit holds `burst_s`
    seconds' worth (60 = a full minute, as the providers' per-minute limits allow) and refills
    continuously. A request takes 1 from RPM and prompt tokens + max output tokens from TPM."""

    model_config = _Strict

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    burst_s: float = Field(default=60.0, gt=0, le=60)


class AnswerConfig(BaseModel):
    """What the fake model says: `fixed` text (a label), `echo` of the last user message,
    `summary` (its first `words` words), or `label`: one of `labels`, chosen by prompt hash."""

    model_config = _Strict

    mode: Literal["fixed", "echo", "summary", "label"] = "summary"
    text: str = "ok"
    words: int = Field(default=30, ge=1)
    labels: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels_for_label_mode(self) -> AnswerConfig:
        if self.mode == "label" and not self.labels:
            raise ValueError("answer mode 'label' needs a non-empty `labels` list")
        return self


class BatchConfig(BaseModel):
    """The batch APIs (OpenAI /v1/batches, Anthropic /v1/messages/batches). Each request in a
    batch is answered like an immediate call (answer rules, injected errors, usage) but with no
    latency and no RPM/TPM buckets; the batch as a whole ends `processing_s` after creation."""

    model_config = _Strict

    processing_s: float = Field(default=1.0, ge=0)
    # > 0: batches end `expired` at processing_s with this share of their requests (the last
    # ones) unprocessed, the rest answered, as real batches that miss their 24 h window.
    expire_fraction: float = Field(default=0.0, ge=0, le=1)
    # The providers' limits; lower them to test rejection without building huge inputs.
    openai_max_requests: int = Field(default=50_000, ge=1)
    openai_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    anthropic_max_requests: int = Field(default=100_000, ge=1)
    anthropic_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1)


class FakeServerConfig(BaseModel):
    model_config = _Strict

    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    errors: ErrorsConfig = Field(default_factory=ErrorsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    answers: dict[str, AnswerConfig] = Field(default_factory=dict)  # model glob -> answer rule
    context_window: int = Field(default=128_000, ge=16)  # longer prompts get a real 400
    reasoning_tokens: int = Field(default=0, ge=0)  # hidden thinking added to every output
    simulate_cache: bool = True  # OpenAI-style: a repeated >=1024-token prefix is reported cached
    api_key: str | None = None  # when set, requests without this key get the real 401
    seed: int | None = 0  # None: a different random stream every run
    batch: BatchConfig = Field(default_factory=BatchConfig)

    def answer_for(self, model: str) -> AnswerConfig:
        for pattern, rule in self.answers.items():
            if fnmatch.fnmatchcase(model, pattern):
                return rule
        return self.answer


def load_fake_config(path: str | Path | None) -> FakeServerConfig:
    """A config from a YAML or JSON file; the defaults when `path` is None."""
    if path is None:
        return FakeServerConfig()
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    return FakeServerConfig.model_validate(data)
