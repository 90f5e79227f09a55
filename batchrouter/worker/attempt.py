"""One item on one tier: choose a deployment, call it, judge the output, decide what follows.

This is the worker's inner loop, written over the provider contract and the pure routing core;
it touches neither Celery nor the database, so it runs the same under a worker, in replay and in
evaluation. It never raises: every failure becomes an attempt record and an outcome.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from batchrouter.ledger.models import ItemState
from batchrouter.ledger.transitions import AttemptRecord, ClaimedItem, ItemOutcome
from batchrouter.providers.base import get_provider
from batchrouter.providers.errors import backoff_delay, redact
from batchrouter.routing.checks import judge
from batchrouter.routing.config import RoutingConfig
from batchrouter.routing.policy import (
    Step,
    after_check_failure,
    after_error,
    fits_context,
    next_tier,
    when_tier_exhausted,
)
from batchrouter.routing.prices import cost_usd
from batchrouter.routing.prompts import render_messages
from batchrouter.routing.tokens import count_message_tokens
from batchrouter.routing.types import (
    CompletionRequest,
    ErrorClass,
    ProviderError,
    RequestMeta,
    Usage,
)

Sleep = Callable[[float], Awaitable[None]]


async def run_item(
    item: ClaimedItem,
    config: RoutingConfig,
    task_name: str,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> ItemOutcome:
    task = config.task_type(task_name)
    tier = item.tier
    rng = rng or random.Random()
    records: list[AttemptRecord] = []
    attempt_no = item.attempts

    def outcome(state: str, to_tier: str, error: str | None, record: AttemptRecord | None):
        return ItemOutcome(
            item_id=item.id,
            batch_id=item.batch_id,
            tier=tier,
            attempts=records,
            next_state=state,
            next_tier=to_tier,
            output=record.output if record else None,
            deployment=record.deployment if record else None,
            model=record.model if record else None,
            error=error,
        )

    feedback = None
    if task.show_failed_output and item.last_output is not None and item.last_error:
        feedback = (
            f"A previous answer was rejected ({item.last_error}). "
            f"The rejected answer was:\n{item.last_output}"
        )
    fields = {key: str(value) for key, value in item.fields.items()}
    messages = render_messages(task, item.text, fields, feedback)
    last_error: ErrorClass | None = None
    last_message = "no deployment could take the item"

    for name in config.tier(tier).deployments:
        deployment = config.deployments[name]
        prompt_tokens = count_message_tokens(messages, deployment.model)
        if not fits_context(config, name, prompt_tokens):
            last_error = ErrorClass.CONTEXT_LENGTH
            last_message = (
                f"{name}: prompt of ~{prompt_tokens} tokens + {deployment.max_output_tokens} output "
                f"tokens exceeds its {deployment.context_window}-token window"
            )
            continue
        prices = config.prices_for(name)
        retries = 0
        while True:
            if attempt_no >= task.max_attempts:
                reason = f"attempt cap reached ({task.max_attempts} calls); last: {last_message}"
                return outcome(ItemState.FAILED, tier, reason, _best(records))
            attempt_no += 1
            record = AttemptRecord(
                attempt_no=attempt_no,
                tier=tier,
                deployment=name,
                provider=deployment.provider,
                model=deployment.model,
                outcome="error",
                prices=prices.model_dump(),
            )
            records.append(record)
            request = CompletionRequest(
                deployment=name,
                model=deployment.model,
                messages=messages,
                max_output_tokens=deployment.max_output_tokens,
                temperature=deployment.temperature,
                logprobs=deployment.logprobs,
                meta=RequestMeta(
                    item_key=item.external_id,
                    expected=item.expected,
                    labels=task.labels,
                    attempt_no=attempt_no,
                ),
            )
            try:
                result = await get_provider(deployment.provider).complete(request, deployment)
            except ProviderError as error:
                _fill_usage(record, error.billed_usage, prices)
                record.latency_ms = error.latency_ms
                record.error_class = error.error_class.value
                record.error_message = redact(error.message)
                last_error, last_message = error.error_class, f"{name}: {record.error_message}"
                step = after_error(error.error_class, retries, task)
                if step is Step.RETRY:
                    delay = backoff_delay(retries, error.retry_after_s, rng=rng)
                    if delay is not None:
                        retries += 1
                        await sleep(delay)
                        continue
                    step = Step.NEXT_DEPLOYMENT
                if step is Step.NEXT_DEPLOYMENT:
                    break
                return outcome(ItemState.FAILED, tier, last_message, _best(records))
            except Exception as exc:  # a bug in an adapter must not kill the worker
                record.error_class = ErrorClass.INTERNAL.value
                record.error_message = redact(f"{type(exc).__name__}: {exc}")
                return outcome(ItemState.FAILED, tier, record.error_message, _best(records))

            _fill_usage(record, result.usage, prices)
            record.latency_ms = result.latency_ms
            record.request_id = result.request_id
            judgement = judge(task.checks, result.text, item.text)
            record.output = judgement.output if judgement.passed else result.text
            record.verdicts = [
                {"check": v.check, "passed": v.passed, "reason": v.reason, "score": v.score}
                for v in judgement.verdicts
            ]
            if judgement.passed:
                record.outcome = "passed"
                return outcome(ItemState.SUCCEEDED, tier, None, record)
            record.outcome = "check_failed"
            if after_check_failure(task, tier) is Step.ESCALATE:
                return outcome(
                    ItemState.QUEUED, next_tier(task, tier) or tier, judgement.reason, record
                )
            return outcome(
                ItemState.FAILED, tier, f"last tier failed its checks: {judgement.reason}", record
            )

    if when_tier_exhausted(last_error, task, tier) is Step.ESCALATE:
        return outcome(ItemState.QUEUED, next_tier(task, tier) or tier, last_message, None)
    return outcome(ItemState.FAILED, tier, f"tier {tier} exhausted: {last_message}", _best(records))


def _fill_usage(record: AttemptRecord, usage: Usage | None, prices) -> None:  # type: ignore[no-untyped-def]
    if usage is None:
        return  # the provider does not bill this failure
    record.input_tokens = usage.input_tokens
    record.cached_input_tokens = usage.cached_input_tokens
    record.cache_write_tokens = usage.cache_write_tokens
    record.output_tokens = usage.output_tokens
    record.reasoning_tokens = usage.reasoning_tokens
    record.usage_estimated = usage.estimated
    record.cost_usd = cost_usd(usage, prices)


def _best(records: list[AttemptRecord]) -> AttemptRecord | None:
    """The last attempt that produced any output: kept on a failed item for review."""
    for record in reversed(records):
        if record.output:
            return record
    return None
