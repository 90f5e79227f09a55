"""Prices and cost. Prices are USD per million tokens; cost is computed from normalised usage."""

from __future__ import annotations

from pydantic import Field, model_validator

from routing.schema import StrictModel
from routing.types import Usage

# Anything above this is a typo or a broken price map entry (some public maps list $10,000/1M).
MAX_PLAUSIBLE_PER_MTOK = 1000.0


class Prices(StrictModel):
    """USD per 1M tokens. Cached reads and cache writes default to the input price."""

    input: float = Field(ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    output: float = Field(ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    cached_input: float | None = Field(default=None, ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    cache_write: float | None = Field(default=None, ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    version: str = "routing-file"  # where these figures came from, stamped on each attempt
    # Anthropic's 1-hour cache writes (2x input). Informational: batchrouter never asks for the
    # 1-hour TTL, and Usage has no 5m/1h split, so cost_usd prices all writes at `cache_write`.
    cache_write_1h: float | None = Field(default=None, ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    # Long-context tier (Gemini 2.5/3 Pro above 200k, gpt-5.4 above 272k prompt tokens): when
    # the prompt is longer than `above_tokens`, the `*_above` rates apply to the whole request.
    above_tokens: int | None = Field(default=None, ge=1)
    input_above: float | None = Field(default=None, ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    output_above: float | None = Field(default=None, ge=0, le=MAX_PLAUSIBLE_PER_MTOK)
    cached_input_above: float | None = Field(default=None, ge=0, le=MAX_PLAUSIBLE_PER_MTOK)

    @model_validator(mode="after")
    def _defaults(self) -> Prices:
        if self.cached_input is None:
            self.cached_input = self.input
        if self.cache_write is None:
            self.cache_write = self.input
        return self


def cost_usd(usage: Usage, prices: Prices) -> float:
    """Cost of one call: uncached input, cached reads, cache writes and output, each at its rate.

    One formula serves every provider because Usage is normalised by the adapters (input includes
    cached reads and writes; output includes reasoning), e.g. OpenAI
    `(prompt - cached) * in + cached * cached_in + completion * out`.
    """
    in_rate, out_rate = prices.input, prices.output
    cached_rate = prices.cached_input if prices.cached_input is not None else prices.input
    write_rate = prices.cache_write if prices.cache_write is not None else prices.input
    if prices.above_tokens is not None and usage.input_tokens > prices.above_tokens:
        in_rate = prices.input_above if prices.input_above is not None else in_rate
        out_rate = prices.output_above if prices.output_above is not None else out_rate
        if prices.cached_input_above is not None:
            cached_rate = prices.cached_input_above
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    uncached = usage.input_tokens - cached - written
    total = (
        uncached * in_rate
        + cached * cached_rate
        + written * write_rate
        + usage.output_tokens * out_rate
    )
    return total / 1_000_000


def scaled_prices(prices: Prices, factor: float, tag: str) -> Prices:
    """Every rate times `factor` (batch APIs: 0.5), with `tag` appended to the version."""
    data = prices.model_dump()
    for key, value in data.items():
        if key not in ("version", "above_tokens") and isinstance(value, int | float):
            data[key] = value * factor
    data["version"] = f"{prices.version}+{tag}"
    return Prices.model_validate(data)
