"""When a whole rung is down: its items wait, escalate or fail (routing/policy.when_rung_down).

A rung is down for an item when each of its deployments either refused the call because its
circuit is open (worker/stats_store.py: no call made, no attempt spent) or failed every call
of this round with transient errors; a deployment whose context window cannot hold the prompt
counts for neither. Then, instead of failing the item with "tier exhausted":

- wait: the item goes back to `queued` on its tier, and the chunk publishes it again with a
  countdown (worker/pipeline.py), timed for when its circuit lets a probe through, spread over a
  few seconds. Waiting holds no worker slot and, as a parked round, gives its claim back
  (ledger/transitions.py); the calls the outage cut before the circuit opened, and failed
  probes, are unbilled and given back to the attempt cap: so an outage of any length counts
  towards neither max_attempts nor max_claims (outage_wait_s bounds it). The item's `error`
  says what it waits for, for `status` and the operator;
- escalate: queued on the next rung, published like any escalation;
- fail: failed with a reason naming the outage and the limit.

How long the rung has been down is measured from its circuits (the latest of its deployments
to go down, on Redis's clock), so every worker and every item agree, and an item that arrives
late in a long outage does not start its own wait from zero.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Protocol

from ledger.models import ItemState
from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from routing.config import RoutingConfig, TaskType
from routing.policy import MAX_WAIT_S, Step, next_tier, outage_wait_delay, when_rung_down
from routing.tiers import Tier
from routing.types import ErrorClass
from worker.middleware import CircuitOpen, Denied


class RoundView(Protocol):
    """What this module needs of a round (worker/attempt.py's _Run)."""

    item: ClaimedItem
    config: RoutingConfig
    task: TaskType
    records: list[AttemptRecord]

    def parked(self, denied: Denied) -> ItemOutcome: ...

    def outcome(
        self, state: str, to_tier: str, error: str | None, record: AttemptRecord | None
    ) -> ItemOutcome: ...


@dataclass(frozen=True)
class RungDown:
    step: Step  # WAIT, ESCALATE or FAIL
    reason: str
    resume_in_s: float = 0.0  # WAIT: come back after this long
    # WAIT with every down deployment's circuit open: the round's unbilled transient failures
    # are given back to the item's attempt cap (the outage is bounded by outage_wait_s, on
    # the circuits' clock). Without an open circuit all but one are: each such round costs
    # the item one attempt, so the cap still bounds a deployment that fails for it alone,
    # and an item whose first rounds met an outage before its circuit opened (or while the
    # statistics' Redis was unreachable) is not failed by the outage's first seconds.
    give_back: bool = False


@dataclass
class RungHealth:
    """What one round learned of its tier's deployments."""

    down: set[str] = field(default_factory=set)  # refused by a circuit, or transient only
    too_long: set[str] = field(default_factory=set)  # the prompt does not fit its window
    refused: list[CircuitOpen] = field(default_factory=list)

    def circuit_open(self, name: str, circuit: CircuitOpen) -> None:
        self.down.add(name)
        self.refused.append(circuit)


def outage_outcome(
    run: RoundView, health: RungHealth, last_message: str, rng: random.Random
) -> ItemOutcome | None:
    """The round's outcome when every deployment of its tier is down, None when one is not:
    waiting (parked, published again later), escalated or failed, with the reason."""
    from worker.judging import best_record

    task, tier = run.task, run.item.tier
    outage = rung_down(task, run.config.tier(tier), health, last_message, rng)
    if outage is None:
        return None
    if outage.step is Step.WAIT:
        waiting = run.parked(Denied(outage.reason))
        waiting.resume_in_s = outage.resume_in_s
        waiting.attempts_given_back = calls_given_back(run.records, all_of_them=outage.give_back)
        return waiting
    if outage.step is Step.ESCALATE:
        return run.outcome(ItemState.QUEUED, next_tier(task, tier) or tier, outage.reason, None)
    return run.outcome(ItemState.FAILED, tier, outage.reason, best_record(run.records))


def rung_down(
    task: TaskType, tier: Tier, health: RungHealth, last_message: str, rng: random.Random
) -> RungDown | None:
    """What the round does when every deployment of `tier` is down; None when one is not."""
    down = health.down
    if not down or any(name not in down | health.too_long for name in tier.deployments):
        return None
    circuits = {c.deployment: c for c in health.refused}
    known = set(circuits) >= down
    if known:  # every down deployment has an open circuit: it knows since when
        down_for = min(c.down_for_s for c in circuits.values())
        retry_in = min(c.retry_in_s for c in circuits.values())
        since = max(c.down_since for c in circuits.values())
        what = f"circuit open for {', '.join(sorted(down))} since {utc_clock(since)}"
    else:  # transient errors, the circuit not (yet) open: a short wait, then try again
        down_for, retry_in = 0.0, tier.circuit_open_s
        what = f"transient errors ({last_message})"
    step = when_rung_down(task, tier.name, down_for)
    policy = f"on_outage: {task.on_outage}, outage_wait_s: {task.outage_wait_s:g}"
    if step is Step.WAIT:
        delay = outage_wait_delay(retry_in, cap=_max_wait_s(), rng=rng)
        reason = f"tier {tier.name} down: {what}; waiting, next try in {delay:.0f} s ({policy})"
        return RungDown(step, reason, delay, give_back=known)
    verb = "escalated" if step is Step.ESCALATE else "failed"
    return RungDown(step, f"tier {tier.name} down for {down_for:.0f} s: {what}; {verb} ({policy})")


def calls_given_back(records: list[AttemptRecord], *, all_of_them: bool = True) -> int:
    """The calls of a round that the outage took and did not bill: they stay in the ledger
    but do not count towards max_attempts (ledger/transitions.py moves `retry_base`). Not
    `all_of_them` (no circuit is known open): all but one, the round's own attempt."""
    unbilled = sum(1 for r in records if r.error_class == ErrorClass.TRANSIENT and r.cost_usd == 0)
    return unbilled if all_of_them else max(unbilled - 1, 0)


def _max_wait_s() -> float:
    """A delayed message is held unacknowledged by a worker until it is due: stay well within
    the visibility timeout (Celery's advice: countdowns of minutes at most)."""
    from routing.settings import get_settings

    return min(MAX_WAIT_S, get_settings().visibility_timeout / 3)


def utc_clock(epoch: float) -> str:
    """An epoch time as an operator reads it in a log line or an item's error."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))
