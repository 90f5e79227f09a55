"""What happens after an attempt: the outcome table of docs/architecture.md, as pure functions.

| outcome of an attempt                  | next step                                            |
| passes every check                     | succeed                                              |
| fails a quality check                  | escalate to the next tier of the ladder, else fail   |
| transient error / rate limit / bad 200 | retry the same deployment with backoff, then the next |
| prompt longer than the context window  | the next deployment whose window fits, else escalate |
| permanent error                        | the next deployment of the tier, else fail           |
| attempts cap reached                   | fail, keeping the best output                        |
| every deployment of the tier is down   | wait (no attempt spent), then escalate or fail: `when_rung_down` |
"""

from __future__ import annotations

import random
from enum import StrEnum

from routing.config import RoutingConfig, TaskType
from routing.types import ErrorClass


class Step(StrEnum):
    RETRY = "retry"  # the same deployment again, after a backoff delay
    NEXT_DEPLOYMENT = "next_deployment"  # another deployment of the same tier
    ESCALATE = "escalate"  # the next tier of the ladder
    FAIL = "fail"  # the item ends failed
    WAIT = "wait"  # back to its queue on the same tier, later, no attempt spent (an outage)


RETRYABLE = {ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, ErrorClass.BAD_RESPONSE}


def next_tier(task: TaskType, tier: str) -> str | None:
    """The tier after `tier` on this task type's ladder, or None on the last rung."""
    position = task.tier_names.index(tier)
    return task.tier_names[position + 1] if position + 1 < len(task.ladder) else None


def after_check_failure(task: TaskType, tier: str) -> Step:
    return Step.ESCALATE if next_tier(task, tier) is not None else Step.FAIL


def after_error(error_class: ErrorClass, retries_done: int, task: TaskType) -> Step:
    """The step after a failed call on one deployment (retries_done counts earlier retries)."""
    if error_class in RETRYABLE:
        return Step.RETRY if retries_done < task.transient_retries else Step.NEXT_DEPLOYMENT
    if error_class in (ErrorClass.PERMANENT, ErrorClass.CONTEXT_LENGTH):
        return Step.NEXT_DEPLOYMENT
    return Step.FAIL


def when_tier_exhausted(last_error: ErrorClass | None, task: TaskType, tier: str) -> Step:
    """Every deployment of the tier was tried. Only a too-long prompt climbs to a larger model."""
    if last_error is ErrorClass.CONTEXT_LENGTH and next_tier(task, tier) is not None:
        return Step.ESCALATE
    return Step.FAIL


def fits_context(config: RoutingConfig, deployment: str, prompt_tokens: int) -> bool:
    """Whether the prompt plus the output limit fits the deployment's context window."""
    spec = config.deployments[deployment]
    return prompt_tokens + spec.max_output_tokens <= spec.context_window


def premium_tier(task: TaskType) -> str:
    return task.ladder[-1].tier


# A waiting item comes back when the circuit it waits for may let a probe through, spread over
# a few seconds so the queue does not arrive all at once; never later than this (the broker
# holds a delayed message unacknowledged: keep it far below the visibility timeout).
WAIT_SPREAD_S = 5.0
MAX_WAIT_S = 120.0


def when_rung_down(task: TaskType, tier: str, down_for_s: float) -> Step:
    """Every deployment of `tier` is down (circuits open, or transient errors only) and has
    been for `down_for_s` seconds. `on_outage`:

    | on_outage      | while down for less than outage_wait_s | after outage_wait_s          |
    | wait (default) | wait                                   | escalate; fail on the last rung |
    | escalate       | escalate at once (last rung: wait)     | fail on the last rung        |
    | fail           | wait                                   | fail, even with a rung above |
    """
    above = next_tier(task, tier) is not None
    if task.on_outage == "escalate" and above:
        return Step.ESCALATE
    if down_for_s < task.outage_wait_s:
        return Step.WAIT
    if task.on_outage == "wait" and above:
        return Step.ESCALATE
    return Step.FAIL


def outage_wait_delay(
    reopens_in_s: float, *, cap: float = MAX_WAIT_S, rng: random.Random | None = None
) -> float:
    """Seconds a waiting item stays away: until its circuit may let a probe through
    (`reopens_in_s`, at least 1 s), plus a jitter of up to WAIT_SPREAD_S (or half the wait,
    if less), so that the items of a whole queue do not all come back in the same second.
    At most `cap`."""
    rng = rng or random.Random()
    base = max(reopens_in_s, 1.0)
    return min(base + rng.uniform(0.0, min(WAIT_SPREAD_S, base / 2)), cap)


def circuit_open_s(opens: int, first_s: float, max_s: float) -> float:
    """How long a circuit stays open the `opens`-th time in a row (1 = it just opened): the
    first wait doubled after each failed probe, at most `max_s`. (The Redis script in
    worker/deployment_stats.py computes the same; tests/worker checks they agree.)"""
    return min(first_s * 2 ** max(opens - 1, 0), max_s)
