"""Behaviour around each provider call, added as middleware (Dramatiq's pattern).

The inner loop (worker/attempt.py) stays small: it asks every middleware to order the tier's
deployments, to admit each call, and tells them how each call ended. Rate limits, budgets,
cooldowns and latency statistics are middleware; each lives in a module of its own and keeps
its shared state in Redis or the ledger, never only in one worker's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchrouter.ledger.transitions import AttemptRecord, ClaimedItem
from batchrouter.routing.config import RoutingConfig, TaskType
from batchrouter.routing.deployments import Deployment
from batchrouter.routing.prices import Prices
from batchrouter.routing.types import CompletionResult, ProviderError


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

    @property
    def estimated_cost_usd(self) -> float:
        """The most this call can cost: the prompt plus the whole output limit."""
        return (
            self.prompt_tokens * self.prices.input + self.max_output_tokens * self.prices.output
        ) / 1_000_000


@dataclass(frozen=True)
class Denied:
    """A call that must not happen now. The item is parked on its tier (not failed, no attempt
    spent); `pause_batch` also pauses the batch with the reason, until an operator resumes it."""

    reason: str
    pause_batch: bool = False


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


_stack: list[Middleware] = []


def installed() -> list[Middleware]:
    """The middleware every worker call goes through (set up once per process)."""
    return _stack


def install(*middleware: Middleware) -> None:
    _stack[:] = list(middleware)
