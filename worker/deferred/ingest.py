"""A provider batch's results as item outcomes: each answer is priced at batch prices and
judged by the task's checks exactly like an immediate call's; items without a usable result
(expired, cancelled, missing) go back to their queue, keeping what the others produced."""

from __future__ import annotations

from ledger.models import ItemState, ProviderBatch
from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from ledger.transitions import outcome_without_call
from providers.batch_api import BatchResult, BatchStatus
from providers.errors import redact
from routing.config import RoutingConfig
from routing.prices import Prices
from routing.types import CompletionResult, ProviderError
from worker.attempt import judge_deferred_result
from worker.cache_hits import item_cache_key
from worker.deferred.requests import (
    attempt_no,
    batch_prices,
    parse_custom_id,
    price_deferred_call,
)


async def outcomes_from_results(
    pb: ProviderBatch,
    items: list[ClaimedItem],
    results: list[BatchResult],
    status: BatchStatus,
    config: RoutingConfig,
    task_name: str,
) -> list[ItemOutcome]:
    by_item: dict[int, BatchResult] = {}
    for result in results:
        parsed = parse_custom_id(result.custom_id)
        if parsed is not None and parsed[0] == pb.id:
            by_item[parsed[1]] = result
    immediate = config.prices_for(pb.deployment)
    batch = batch_prices(config, pb.deployment)
    outcomes = []
    for item in items:
        found = by_item.get(item.id)
        if status.failed_reason:
            outcomes.append(_failed(item, f"provider batch failed: {status.failed_reason}"))
        elif found is None or found.outcome is None:
            why = "not processed" if found is None else "expired or cancelled"
            outcomes.append(_send_back(item, f"provider batch {status.status}: {why}"))
        else:
            record = _record(pb, item, found.outcome, immediate, batch)
            record.cache_key = item_cache_key(item, config, task_name, pb.deployment)
            outcomes.append(
                await judge_deferred_result(item, config, task_name, record, found.outcome)
            )
    return outcomes


def _record(
    pb: ProviderBatch,
    item: ClaimedItem,
    outcome: CompletionResult | ProviderError,
    immediate: Prices,
    batch: Prices,
) -> AttemptRecord:
    record = AttemptRecord(
        attempt_no=attempt_no(item),
        tier=item.tier,
        deployment=pb.deployment,
        provider=pb.provider,
        model=pb.model,
        outcome="error",
        prices=batch.model_dump(),
        provider_batch_id=pb.id,
    )
    if isinstance(outcome, CompletionResult):
        price_deferred_call(record, outcome.usage, immediate, batch)
        record.output = record.answer = outcome.text
        record.request_id = outcome.request_id
        record.token_logprobs = outcome.token_logprobs
    else:
        price_deferred_call(record, outcome.billed_usage, immediate, batch)
        record.error_class = outcome.error_class.value
        record.error_message = redact(outcome.message)
    return record


def _send_back(item: ClaimedItem, reason: str) -> ItemOutcome:
    """Back on its tier's queue, no attempt recorded (nothing was billed): a worker stages it
    again and the next provider batch takes it. The claim cap ends an item that keeps
    expiring."""
    return outcome_without_call(item, ItemState.QUEUED.value, reason)


def _failed(item: ClaimedItem, reason: str) -> ItemOutcome:
    return outcome_without_call(item, ItemState.FAILED.value, reason[:2000])
