"""A rung whose deployments are all down: items wait (no attempt spent), then escalate or
fail as the task type says; a rung with one deployment up is no outage. One item's round over
the provider contract, with the real statistics middleware on the in-process store and a
clock the test moves (no network, no database)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest

from ledger.outcomes import ClaimedItem
from providers import base
from routing.config import parse_config
from routing.deployments import Deployment
from routing.types import CompletionRequest, CompletionResult, ErrorClass, ProviderError, Usage
from worker.attempt import run_item
from worker.deployment_stats import DeploymentStats
from worker.stats_store import MemoryStats

RULES = """\
deployments:
  a: {provider: outage_scripted, model: gpt-4o-mini, prices: {input: 1, output: 2}}
  b: {provider: outage_scripted, model: gpt-4o-mini, prices: {input: 1, output: 2}}
  c: {provider: outage_scripted, model: gpt-4o, prices: {input: 10, output: 20}}
tiers:
  - {name: t0, deployments: [a], circuit_after_failures: 3, circuit_open_s: 4}
  - {name: t1, deployments: [c], circuit_after_failures: 3, circuit_open_s: 4}
  - {name: pair, deployments: [a, b], circuit_after_failures: 3, cooldown_after_failures: 100}
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label this: {text}"
    checks: [{kind: label, labels: [billing]}]
    transient_retries: 2
    on_outage: POLICY
    outage_wait_s: 60
  pairs:
    ladder: [pair]
    prompt: "Label this: {text}"
    checks: [{kind: label, labels: [billing]}]
"""
REFUSED = ProviderError(ErrorClass.TRANSIENT, "ConnectError: connection refused")


class Provider:
    """Every call to a deployment listed in `down` is refused; the others answer."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[str] = []

    async def complete(self, request: CompletionRequest, deployment: Deployment):  # type: ignore[no-untyped-def]
        self.calls.append(request.deployment)
        if request.deployment in self.down:
            raise REFUSED
        return CompletionResult(text="billing", usage=Usage(input_tokens=10, output_tokens=1))


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    scripted = Provider()
    monkeypatch.setitem(base._INSTANCES, "outage_scripted", scripted)
    yield scripted


def item(n: int = 1, tier: str = "t0") -> ClaimedItem:
    return ClaimedItem(
        id=n, batch_id="b", external_id=f"T-{n}", text="charged twice", expected=None,
        fields={}, tier=tier, attempts=0, cost_usd=0.0, last_output=None, last_error=None,
    )  # fmt: skip


class World:
    def __init__(self, policy: str = "wait") -> None:
        self.config = parse_config(RULES.replace("POLICY", policy))
        self.clock = Clock()
        self.stats = DeploymentStats(MemoryStats(clock=self.clock), rng=random.Random(1))

    def run(self, claimed: ClaimedItem, task: str = "tickets"):  # type: ignore[no-untyped-def]
        async def no_sleep(_seconds: float) -> None:
            return None

        return asyncio.run(
            run_item(
                claimed,
                self.config,
                task,
                sleep=no_sleep,
                rng=random.Random(2),
                middleware=[self.stats],
            )  # fmt: skip
        )


def test_items_of_a_rung_that_is_down_wait_without_spending_attempts(provider) -> None:
    world, provider.down = World(), {"a"}
    first = world.run(item(1))  # 3 refused connections open the circuit
    later = [world.run(item(n)) for n in range(2, 12)]

    assert [r.error_class for r in first.attempts] == ["transient"] * 3
    assert (first.next_state, first.next_tier, first.parked) == ("queued", "t0", True)
    # No circuit refused it: the cap counts one call of the round, not the outage's three.
    assert first.attempts_given_back == 2
    assert provider.calls == ["a"] * 3  # ten more items, not one more call
    for outcome in later:
        assert (outcome.next_state, outcome.next_tier, outcome.attempts) == ("queued", "t0", [])
        assert outcome.parked and outcome.pause_reason is None
        assert 4.0 <= (outcome.resume_in_s or 0) <= 6.0  # when a probe may test it, spread
        assert outcome.error is not None
        assert outcome.error.startswith("tier t0 down: circuit open for a since ")
        assert "waiting, next try in" in outcome.error and "on_outage: wait" in outcome.error


def test_one_probe_after_the_wait_and_the_rung_is_back(provider) -> None:
    world, provider.down = World(), {"a"}
    world.run(item(1))
    world.clock.now += 4.5  # past circuit_open_s: half-open
    probe = world.run(item(2))
    assert [r.error_class for r in probe.attempts] == ["transient"]  # one call, not three
    assert probe.parked and probe.attempts_given_back == 1  # unbilled: not counted in the cap
    assert world.run(item(3)).attempts == []  # reopened for 8 s
    provider.down = set()
    world.clock.now += 8.5
    assert world.run(item(4)).next_state == "succeeded"  # the probe answered: closed
    assert world.run(item(5)).next_state == "succeeded"
    assert provider.calls == ["a"] * 4 + ["a", "a"]


def test_calls_an_outage_cut_before_the_circuit_opened_are_given_back(provider) -> None:
    world, provider.down = World(), {"a"}
    for n in range(2):  # two failures elsewhere: the next one opens the circuit
        asyncio.run(world.stats.store.end("a", f"x{n}", None, "transient", 100, 30, rule()))
    outcome = world.run(item(1))
    assert [r.error_class for r in outcome.attempts] == ["transient"]  # its retry was refused
    assert outcome.parked and outcome.attempts_given_back == 1


def test_without_a_circuit_each_round_costs_one_attempt_and_the_cap_still_ends_it(
    provider,
) -> None:
    """No statistics at all (none shared: the circuit is never known open). A round cut by
    the outage costs the item one attempt, not its three unbilled calls: the first seconds of
    an outage do not fail it, and a deployment that fails for it alone still ends at the cap
    (max_attempts 6: four rounds of one, then the fifth round's two calls reach it)."""
    world, provider.down = World(), {"a"}
    counted, rounds = 0, []
    for _ in range(10):
        claimed = replace(item(1), attempts=counted)
        outcome = asyncio.run(
            run_item(
                claimed,
                world.config,
                "tickets",
                sleep=_no_sleep,
                rng=random.Random(2),
                middleware=[],
            )
        )
        rounds.append(outcome)
        if not outcome.parked:
            break
        counted += len(outcome.attempts) - outcome.attempts_given_back
    assert [len(r.attempts) - r.attempts_given_back for r in rounds[:-1]] == [1] * 4
    assert rounds[-1].next_state == "failed" and "attempt cap reached" in (rounds[-1].error or "")


async def _no_sleep(_seconds: float) -> None:
    return None


def rule():  # type: ignore[no-untyped-def]
    from worker.stats_store import CircuitRule

    return CircuitRule(after_failures=3, open_s=4, open_max_s=60)


@pytest.mark.parametrize(
    ("policy", "tier", "state", "to_tier", "words"),
    [
        ("wait", "t0", "queued", "t1", "escalated (on_outage: wait, outage_wait_s: 60)"),
        ("wait", "t1", "failed", "t1", "failed (on_outage: wait, outage_wait_s: 60)"),
        ("fail", "t0", "failed", "t0", "failed (on_outage: fail, outage_wait_s: 60)"),
    ],
)
def test_past_outage_wait_s_items_escalate_or_fail_naming_the_outage(
    provider, policy: str, tier: str, state: str, to_tier: str, words: str
) -> None:
    world, provider.down = World(policy), {"a", "c"}
    world.run(item(1, tier))
    for _ in range(7):  # probes fail; the rung stays down for 4 + 8 + 16 + 32 + ... s
        world.clock.now += 60
        world.run(item(1, tier))
    outcome = world.run(item(2, tier))
    assert (outcome.next_state, outcome.next_tier) == (state, to_tier)
    assert outcome.error is not None and outcome.error.startswith(f"tier {tier} down for ")
    assert words in outcome.error


def test_on_outage_escalate_climbs_at_once(provider) -> None:
    world, provider.down = World("escalate"), {"a"}
    outcome = world.run(item(1))
    assert (outcome.next_state, outcome.next_tier) == ("queued", "t1")
    assert "escalated (on_outage: escalate" in (outcome.error or "")


def test_a_rung_with_one_deployment_up_is_no_outage(provider) -> None:
    world, provider.down = World(), {"a"}
    world.run(item(1, "pair"), "pairs")  # a: three failures open its circuit; b answers
    outcome = world.run(item(2, "pair"), "pairs")
    assert outcome.next_state == "succeeded" and outcome.deployment == "b"
    assert [r.deployment for r in outcome.attempts] == ["b"]  # a: ordered last, not called
    provider.down = {"a", "b"}
    world.run(item(3, "pair"), "pairs")  # b: three failures open its circuit too
    both = world.run(item(4, "pair"), "pairs")
    assert both.parked and both.attempts == []
    assert (both.error or "").startswith("tier pair down: circuit open for a, b since ")
