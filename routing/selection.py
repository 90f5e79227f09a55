"""Which deployment of a tier to try first: the tier's strategy over live statistics.

Pure: the caller (worker/deployment_stats.py) reads the statistics, shared by every worker
through Redis, and the clock; this module only orders names. Every deployment stays in the
list: one that is cooling down goes last, never away, because a tier whose every deployment
cools must still try one (a "no deployments available" error would fail work that waiting
fixes). A deployment whose context window cannot hold the prompt is skipped later, by the
caller (routing/policy.fits_context), whatever its place.

| strategy         | first                                                                  |
| ordered          | the order the tier lists them                                          |
| cheapest         | the lowest estimated cost of this prompt (its tokens x input price, the |
|                  | output limit x output price, long-context rates when they apply)        |
| weighted         | a random order drawn by the tier's `weights` (a missing name weighs 1)  |
| least_busy       | the fewest calls in flight, across all workers                          |
| lowest_latency   | the lowest recent latency (EWMA); never-measured deployments first      |
Ties keep the tier's order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from routing.config import RoutingConfig
from routing.prices import Prices, cost_usd
from routing.types import Usage

STRATEGIES = ("ordered", "cheapest", "weighted", "least_busy", "lowest_latency")


@dataclass(frozen=True)
class LiveStats:
    """What the workers together know of one deployment right now."""

    in_flight: int = 0  # calls running on it, all workers together
    latency_ewma_ms: float | None = None  # None: no call has finished yet
    cooling_until: float = 0.0  # epoch seconds (Redis's clock); 0: not cooling

    def cooling(self, now: float) -> bool:
        return self.cooling_until > now


NO_STATS = LiveStats()


def estimated_call_cost(
    prices: Prices, prompt_tokens: int, max_output_tokens: int, cache_hit_ratio: float = 0.0
) -> float:
    """The most one call can cost: the prompt (a share of it read from the provider's cache at
    the cached rate, when a hit ratio is expected) plus the whole output limit."""
    cached = int(prompt_tokens * min(max(cache_hit_ratio, 0.0), 1.0))
    usage = Usage(
        input_tokens=prompt_tokens, cached_input_tokens=cached, output_tokens=max_output_tokens
    )
    return cost_usd(usage, prices)


def order_deployments(
    config: RoutingConfig,
    tier: str,
    names: list[str],
    prompt_tokens: int,
    stats: Mapping[str, LiveStats],
    rng: random.Random,
    *,
    now: float,
) -> list[str]:
    """`names` (the tier's deployments) in the order to try them; cooling ones last."""
    spec = config.tier(tier)
    position = {name: index for index, name in enumerate(names)}

    def stat(name: str) -> LiveStats:
        return stats.get(name, NO_STATS)

    if spec.strategy == "cheapest":

        def cost(name: str) -> float:
            deployment = config.deployments[name]
            return estimated_call_cost(
                config.prices_for(name), prompt_tokens, deployment.max_output_tokens
            )

        ordered = sorted(names, key=lambda name: (cost(name), position[name]))
    elif spec.strategy == "weighted":
        ordered = weighted_shuffle(names, spec.weights, rng)
    elif spec.strategy == "least_busy":
        ordered = sorted(names, key=lambda name: (stat(name).in_flight, position[name]))
    elif spec.strategy == "lowest_latency":

        def latency(name: str) -> float:
            measured = stat(name).latency_ewma_ms
            return -1.0 if measured is None else measured  # unmeasured: try it to learn

        ordered = sorted(names, key=lambda name: (latency(name), position[name]))
    else:
        ordered = list(names)
    ready = [name for name in ordered if not stat(name).cooling(now)]
    cooling = sorted(
        (name for name in ordered if stat(name).cooling(now)),
        key=lambda name: stat(name).cooling_until,  # the first to recover goes first
    )
    return ready + cooling


def weighted_shuffle(
    names: list[str], weights: Mapping[str, float], rng: random.Random
) -> list[str]:
    """A random order where each name comes first with probability weight / total
    (Efraimidis-Spirakis: sort by u ** (1 / w)); weight 0 always goes last."""

    def key(name: str) -> float:
        weight = weights.get(name, 1.0)
        draw = rng.random()
        if weight <= 0:
            return -math.inf
        return math.log(draw or 1e-300) / weight  # log of u ** (1 / w): same order, no underflow

    keys = {name: key(name) for name in names}
    return sorted(names, key=lambda name: -keys[name])
