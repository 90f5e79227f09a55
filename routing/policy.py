"""What happens after an attempt: the outcome table of docs/architecture.md, as pure functions.

| outcome of an attempt                  | next step                                            |
| passes every check                     | succeed                                              |
| fails a quality check                  | escalate to the next tier of the ladder, else fail   |
| transient error / rate limit / bad 200 | retry the same deployment with backoff, then the next |
| prompt longer than the context window  | the next deployment whose window fits, else escalate |
| permanent error                        | the next deployment of the tier, else fail           |
| attempts cap reached                   | fail, keeping the best output                        |
"""

from __future__ import annotations

from enum import StrEnum

from routing.config import RoutingConfig, TaskType
from routing.types import ErrorClass


class Step(StrEnum):
    RETRY = "retry"  # the same deployment again, after a backoff delay
    NEXT_DEPLOYMENT = "next_deployment"  # another deployment of the same tier
    ESCALATE = "escalate"  # the next tier of the ladder
    FAIL = "fail"  # the item ends failed


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
