"""A tier: an ordered rung of the ladders, its deployments, how a call picks among them, and
how a deferred tier fills provider batches. Its name is also its broker queue's name."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from routing.schema import StrictModel


class BatchOptions(StrictModel):
    """How a deferred tier fills provider batches (worker/deferred/, docs/cost-levers.md)."""

    # Items are staged this long (from the oldest) before they are sent as one provider batch,
    # so a nightly run becomes a few large batches rather than one per worker chunk.
    collect_s: float = Field(default=30.0, ge=0, le=86_400)
    # Below the providers' limits: OpenAI 50,000 requests / 200 MB per batch (one model per
    # file), Anthropic 100,000 requests / 256 MB.
    max_requests: int = Field(default=50_000, ge=1, le=100_000)
    max_bytes: int = Field(default=190_000_000, ge=1_000, le=256_000_000)
    completion_window: Literal["24h"] = "24h"  # the only window both providers offer


class Tier(StrictModel):
    """An ordered rung of the ladder. Its name is also the name of its broker queue."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    deployments: list[str] = Field(min_length=1)
    # How a call picks among the tier's deployments (routing/selection.py, docs/routing.md).
    strategy: Literal["ordered", "cheapest", "weighted", "least_busy", "lowest_latency"] = "ordered"
    weights: dict[str, float] = Field(default_factory=dict)  # weighted: missing names weigh 1
    # A deployment failing this many calls in a row (transient, rate limited, bad response)
    # is tried last for cooldown_s seconds, by every worker (the cooldown lives in Redis).
    cooldown_after_failures: int = Field(default=3, ge=1, le=1000)
    cooldown_s: float = Field(default=30.0, ge=0, le=86_400)
    # Outages (worker/stats_store.py, docs/routing.md): a deployment failing this many calls in
    # a row with transient errors (connection refused, 5xx, timeouts) has its circuit opened for
    # circuit_open_s, doubled after each failed probe up to circuit_open_max_s; every worker
    # then refuses calls to it (no attempt spent) until one probe call finds it answering.
    circuit_after_failures: int = Field(default=5, ge=1, le=1000)
    circuit_open_s: float = Field(default=5.0, gt=0, le=600)
    circuit_open_max_s: float = Field(default=60.0, gt=0, le=600)
    # Deferred: the tier's calls go through its first deployment's batch API at batch prices
    # (about half), answered within the completion window instead of seconds.
    deferred: bool = False
    batch: BatchOptions = Field(default_factory=BatchOptions)

    @model_validator(mode="after")
    def _circuit_waits_grow(self) -> Tier:
        if self.circuit_open_max_s < self.circuit_open_s:
            raise ValueError(
                f"circuit_open_max_s ({self.circuit_open_max_s:g}) must be >= circuit_open_s "
                f"({self.circuit_open_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _weights_name_deployments(self) -> Tier:
        unknown = sorted(set(self.weights) - set(self.deployments))
        if unknown:
            raise ValueError(f"weights name deployments not in this tier: {unknown}")
        negative = sorted(name for name, weight in self.weights.items() if weight < 0)
        if negative:
            raise ValueError(f"weights must be >= 0, got a negative weight for {negative}")
        return self


__all__ = ["BatchOptions", "Tier"]
