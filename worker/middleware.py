"""Behaviour around each provider call, added as middleware (Dramatiq's pattern).

The inner loop (worker/attempt.py) stays small: it asks every middleware to order the tier's
deployments, to admit each call, and tells them how each call ended. Rate limits, budgets,
cooldowns and latency statistics are middleware; each lives in a module of its own and keeps
its shared state in Redis or the ledger, never only in one worker's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.outcomes import AttemptRecord, ClaimedItem
from routing.config import RoutingConfig, TaskType
from routing.deployments import Deployment
from routing.prices import Prices
from routing.types import CompletionResult, ProviderError


@dataclass(frozen=True)
class CallContext:
    item: ClaimedItem
    config: RoutingConfig
    task: TaskType
    deployment_name: str
    deployment: Deployment
    prices: Prices
    prompt_tokens: int  # estimated before the call (tiktoken)
    max_output_tokens: int
    round_cost_usd: float = 0.0  # what this item's earlier calls of this round cost

    @property
    def estimated_cost_usd(self) -> float:
        """The most this call can cost: the prompt plus the whole output limit."""
        return (
            self.prompt_tokens * self.prices.input + self.max_output_tokens * self.prices.output
        ) / 1_000_000


@dataclass(frozen=True)
class CircuitOpen:
    """A call refused because its deployment's circuit is open (worker/stats_store.py)."""

    deployment: str
    down_since: float  # epoch seconds (Redis's clock): when the outage began
    down_for_s: float  # how long ago that was, on the same clock
    retry_in_s: float  # until a probe may test it (or the running probe's lease ends)
    probing: bool = False  # half-open: another worker's probe call is testing it


@dataclass(frozen=True)
class Denied:
    """A call that must not happen now. The item is parked on its tier (not failed, no attempt
    spent); `pause_batch` also pauses the batch with the reason, until an operator resumes it.
    `fail_item` fails the item instead, keeping its best output (a per-item spend cap).
    With `circuit`, only this deployment is refused: the round tries the tier's next one, and
    the item waits when all are down (worker/outage.py)."""

    reason: str
    pause_batch: bool = False
    fail_item: bool = False
    circuit: CircuitOpen | None = None


class Middleware:
    """No-op defaults: a middleware overrides only what it needs."""

    async def order(
        self, config: RoutingConfig, tier: str, names: list[str], prompt_tokens: int
    ) -> list[str]:
        return names

    async def before_call(self, ctx: CallContext) -> Denied | None:
        return None

    async def after_call(
        self, ctx: CallContext, record: AttemptRecord, result: CompletionResult | ProviderError
    ) -> None:
        return None

    async def release(self, ctx: CallContext) -> None:
        """This layer admitted the call but a later one denied it: undo what before_call took
        (a budget reservation, an in-flight count). Called instead of after_call."""
        return None


_stack: list[Middleware] = []


def installed() -> list[Middleware]:
    """The middleware every worker call goes through (set up once per process)."""
    return _stack


def install(*middleware: Middleware) -> None:
    _stack[:] = list(middleware)
