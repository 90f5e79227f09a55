"""Outages in the routing core (pure): what a rung whose every deployment is down does with
its items, how long they stay away, how a circuit's wait grows, and the routing-file settings
with their line-numbered errors."""

from __future__ import annotations

import random

import pytest

from routing.config import ConfigError, parse_config
from routing.policy import (
    MAX_WAIT_S,
    WAIT_SPREAD_S,
    Step,
    circuit_open_s,
    outage_wait_delay,
    when_rung_down,
)

RULES = """\
deployments:
  small: {provider: sim, model: sim-small, prices: {input: 0.1, output: 0.4}, sim: {skill: 0.7}}
  large: {provider: sim, model: sim-large, prices: {input: 2.0, output: 8.0}, sim: {skill: 0.9}}
tiers:
  - name: t0
    deployments: [small]
    circuit_after_failures: 4
  - name: t1
    deployments: [large]
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label: {text}"
    on_outage: POLICY
    outage_wait_s: 120
"""


def task(policy: str = "wait"):  # type: ignore[no-untyped-def]
    return parse_config(RULES.replace("POLICY", policy)).task_type("tickets")


@pytest.mark.parametrize(
    ("policy", "tier", "down_for_s", "step"),
    [
        # wait (the default): wait up to outage_wait_s, then climb; the last rung fails
        ("wait", "t0", 0, Step.WAIT),
        ("wait", "t0", 119.9, Step.WAIT),
        ("wait", "t0", 120, Step.ESCALATE),
        ("wait", "t1", 119.9, Step.WAIT),
        ("wait", "t1", 120, Step.FAIL),
        # escalate: at once where there is a rung above; the last rung waits, then fails
        ("escalate", "t0", 0, Step.ESCALATE),
        ("escalate", "t1", 0, Step.WAIT),
        ("escalate", "t1", 120, Step.FAIL),
        # fail: wait, then fail even with a rung above (an outage never buys premium calls)
        ("fail", "t0", 119.9, Step.WAIT),
        ("fail", "t0", 120, Step.FAIL),
    ],
)
def test_a_rung_that_is_down_waits_then_escalates_or_fails(
    policy: str, tier: str, down_for_s: float, step: Step
) -> None:
    assert when_rung_down(task(policy), tier, down_for_s) is step


def test_no_wait_at_all_is_the_old_behaviour_on_request() -> None:
    rules = parse_config(RULES.replace("POLICY", "fail").replace("120", "0"))
    assert when_rung_down(rules.task_type("tickets"), "t0", 0) is Step.FAIL


def test_the_defaults_wait_ten_minutes_and_open_a_circuit_after_five_failures() -> None:
    rules = parse_config(RULES.replace("    on_outage: POLICY\n    outage_wait_s: 120\n", ""))
    tickets, t1 = rules.task_type("tickets"), rules.tier("t1")
    assert (tickets.on_outage, tickets.outage_wait_s) == ("wait", 600.0)
    assert (t1.circuit_after_failures, t1.circuit_open_s, t1.circuit_open_max_s) == (5, 5.0, 60.0)
    assert rules.tier("t0").circuit_after_failures == 4


def test_a_circuit_waits_twice_as_long_after_each_failed_probe_up_to_its_maximum() -> None:
    assert [circuit_open_s(n, 5.0, 60.0) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_a_waiting_item_comes_back_when_a_probe_may_run_spread_over_a_few_seconds() -> None:
    rng = random.Random(1)
    delays = [outage_wait_delay(8.0, rng=rng) for _ in range(200)]
    assert all(8.0 <= d <= 8.0 + min(WAIT_SPREAD_S, 4.0) for d in delays)
    assert max(delays) - min(delays) > 2.0  # spread, not one second for the whole queue
    assert 1.0 <= outage_wait_delay(0.0, rng=rng) <= 1.5  # a probe now: back in a second
    assert outage_wait_delay(500.0, rng=rng) == MAX_WAIT_S  # far below any visibility timeout
    assert outage_wait_delay(500.0, cap=30.0, rng=rng) == 30.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("on_outage: wait", "on_outage: retry"), "rules.yaml:14: task_types.tickets.on_outage"),
        (
            ("outage_wait_s: 120", "outage_wait_s: -1"),
            "rules.yaml:15: task_types.tickets.outage_wait_s",
        ),
        (
            ("circuit_after_failures: 4", "circuit_after_failures: 0"),
            "rules.yaml:7: tiers.0.circuit_after_failures",
        ),
        (
            ("circuit_after_failures: 4", "circuit_open_s: 30\n    circuit_open_max_s: 10"),
            "rules.yaml:5: tiers.0: Value error, circuit_open_max_s (10) must be >= circuit_open_s (30)",
        ),
    ],
)
def test_a_bad_outage_setting_names_its_line(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(RULES.replace("POLICY", "wait").replace(*change), "rules.yaml")
    assert expected in str(error.value)
