"""Selection within a tier: every strategy, cooldowns and the tier's validation (pure)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from routing.config import ConfigError, RoutingConfig, parse_config
from routing.selection import (
    LiveStats,
    estimated_call_cost,
    order_deployments,
    weighted_shuffle,
)

CONFIG = """\
deployments:
  a: {provider: scripted, model: m, prices: {input: 1.0, output: 8.0}, max_output_tokens: 100}
  b: {provider: scripted, model: m, prices: {input: 2.0, output: 2.0}, max_output_tokens: 100}
  c: {provider: scripted, model: m, prices: {input: 0.5, output: 4.0}, max_output_tokens: 1000}
tiers:
  - {name: t0, deployments: [a, b, c], strategy: STRATEGY, weights: WEIGHTS}
task_types:
  tickets: {ladder: [t0], prompt: "{text}"}
"""
NAMES = ["a", "b", "c"]
NOW = 1_000.0


def config(strategy: str = "ordered", weights: str = "{}") -> RoutingConfig:
    return parse_config(CONFIG.replace("STRATEGY", strategy).replace("WEIGHTS", weights))


def order(cfg: RoutingConfig, prompt_tokens: int = 1000, stats=None, seed: int = 0) -> list[str]:
    return order_deployments(
        cfg, "t0", NAMES, prompt_tokens, stats or {}, random.Random(seed), now=NOW
    )


def test_ordered_keeps_the_tiers_order() -> None:
    assert order(config()) == NAMES


def test_cheapest_prices_this_prompt_and_the_output_limit() -> None:
    cfg = config("cheapest")
    # 1,000 prompt tokens: a = 1000*1 + 100*8 = 1800, b = 2000 + 200 = 2200, c = 500 + 4000
    assert order(cfg, prompt_tokens=1000) == ["a", "b", "c"]
    # 100,000 prompt tokens: the input price dominates: c, a, b
    assert order(cfg, prompt_tokens=100_000) == ["c", "a", "b"]


def test_cheapest_uses_long_context_rates_and_a_cache_share() -> None:
    cfg = parse_config(
        CONFIG.replace("STRATEGY", "cheapest")
        .replace("WEIGHTS", "{}")
        .replace(
            "prices: {input: 0.5, output: 4.0}",
            "prices: {input: 0.5, output: 4.0, above_tokens: 50000, input_above: 5.0}",
        )
    )
    assert order(cfg, prompt_tokens=100_000)[0] == "a"  # c's long-context rate makes it dearest
    prices = cfg.prices_for("a").model_copy(update={"cached_input": 0.1})
    full = estimated_call_cost(prices, 1000, 100)
    assert full == pytest.approx((1000 * 1.0 + 100 * 8.0) / 1e6)
    assert estimated_call_cost(prices, 1000, 100, cache_hit_ratio=0.5) == pytest.approx(
        (500 * 1.0 + 500 * 0.1 + 100 * 8.0) / 1e6
    )


def test_weighted_is_deterministic_with_a_seed_and_follows_the_weights() -> None:
    cfg = config("weighted", "{a: 6, b: 3, c: 1}")
    assert order(cfg, seed=7) == order(cfg, seed=7)
    rng = random.Random(42)
    weights = {"a": 6.0, "b": 3.0, "c": 1.0}
    firsts = Counter(weighted_shuffle(NAMES, weights, rng)[0] for _ in range(20_000))
    assert firsts["a"] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert firsts["b"] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert firsts["c"] / 20_000 == pytest.approx(0.1, abs=0.02)


def test_weighted_missing_names_weigh_one_and_zero_goes_last() -> None:
    rng = random.Random(1)
    orders = [weighted_shuffle(NAMES, {"a": 0.0}, rng) for _ in range(200)]
    assert all(o[-1] == "a" for o in orders)
    assert {o[0] for o in orders} == {"b", "c"}  # b and c weigh 1 each


def test_least_busy_counts_calls_in_flight() -> None:
    stats = {"a": LiveStats(in_flight=9), "b": LiveStats(in_flight=2), "c": LiveStats(in_flight=2)}
    assert order(config("least_busy"), stats=stats) == ["b", "c", "a"]  # ties keep tier order


def test_lowest_latency_prefers_fast_and_tries_unmeasured_first() -> None:
    stats = {"a": LiveStats(latency_ewma_ms=900), "b": LiveStats(latency_ewma_ms=150)}
    assert order(config("lowest_latency"), stats=stats) == ["c", "b", "a"]
    stats["c"] = LiveStats(latency_ewma_ms=400)
    assert order(config("lowest_latency"), stats=stats) == ["b", "c", "a"]


@pytest.mark.parametrize("strategy", ["ordered", "cheapest", "weighted", "least_busy"])
def test_cooling_deployments_go_last_never_away(strategy: str) -> None:
    cfg = config(strategy)
    stats = {"a": LiveStats(cooling_until=NOW + 30)}
    ordered = order(cfg, stats=stats)
    assert ordered[-1] == "a" and sorted(ordered) == NAMES
    expired = {"a": LiveStats(cooling_until=NOW - 1)}
    assert order(config("ordered"), stats=expired) == NAMES  # a past cooldown is no cooldown


def test_a_tier_whose_every_deployment_cools_still_tries_them_soonest_first() -> None:
    stats = {
        "a": LiveStats(cooling_until=NOW + 30),
        "b": LiveStats(cooling_until=NOW + 5),
        "c": LiveStats(cooling_until=NOW + 10),
    }
    assert order(config(), stats=stats) == ["b", "c", "a"]


def test_weights_must_name_the_tiers_deployments() -> None:
    with pytest.raises(ConfigError, match="weights name deployments not in this tier"):
        config("weighted", "{a: 1, zz: 2}")
    with pytest.raises(ConfigError, match="weights must be >= 0"):
        config("weighted", "{a: -1}")
    with pytest.raises(ConfigError, match="strategy"):
        config("fastest")


def test_a_tier_defaults_to_ordered_with_a_cooldown_after_three_failures() -> None:
    tier = config().tier("t0")
    assert (tier.strategy, tier.cooldown_after_failures, tier.cooldown_s) == ("ordered", 3, 30.0)
