"""What one call for an item sends, and what its answer is recorded as costing.

Shared by the call path (worker/attempt.py), the response cache's lookups (worker/cache_hits.py,
which must compute the very key a call would) and the deferred tiers' batch files
(worker/deferred/requests.py): one function each, so they cannot drift apart.
"""

from __future__ import annotations

from ledger.outcomes import AttemptRecord, CachePolicy, ClaimedItem
from routing.config import TaskType
from routing.deployments import Deployment
from routing.prices import Prices, cost_usd
from routing.prompts import render_messages
from routing.types import CompletionRequest, Message, RequestMeta, Usage


def cache_policy(task: TaskType) -> CachePolicy | None:
    return CachePolicy(task.cache_namespace, task.cache_ttl_s) if task.cache else None


def item_messages(item: ClaimedItem, task: TaskType) -> list[Message]:
    """The messages every call for this item sends on its current round (and the messages
    its response-cache key is computed from: one function, so the two cannot drift)."""
    feedback = None
    if task.show_failed_output and item.last_output is not None and item.last_error:
        feedback = (
            f"A previous answer was rejected ({item.last_error}). "
            f"The rejected answer was:\n{item.last_output}"
        )
    fields = {key: str(value) for key, value in item.fields.items()}
    return render_messages(task, item.text, fields, feedback)


def build_request(
    task: TaskType,
    name: str,
    deployment: Deployment,
    messages: list[Message],
    item: ClaimedItem,
    attempt_no: int,
    sample: int = 0,
) -> CompletionRequest:
    """The request a call on deployment `name` sends; the cache key hashes all of it but
    `meta` (save the consensus sample number)."""
    return CompletionRequest(
        deployment=name,
        model=deployment.model,
        messages=messages,
        max_output_tokens=deployment.max_output_tokens,
        temperature=deployment.temperature,
        logprobs=deployment.logprobs,
        json_schema=task.output_schema if deployment.json_output else None,
        meta=RequestMeta(
            item_key=item.external_id,
            expected=item.expected,
            labels=task.labels,
            attempt_no=attempt_no,
            sample=sample,
        ),
    )


def fill_usage(
    record: AttemptRecord, usage: Usage | None, prices: Prices, override: float | None = None
) -> None:
    if usage is None:
        return  # the provider does not bill this failure
    record.input_tokens = usage.input_tokens
    record.cached_input_tokens = usage.cached_input_tokens
    record.cache_write_tokens = usage.cache_write_tokens
    record.output_tokens = usage.output_tokens
    record.reasoning_tokens = usage.reasoning_tokens
    record.usage_estimated = usage.estimated
    # A recorded cost (replay of an earlier run) is what was paid; else price the usage.
    record.cost_usd = override if override is not None else cost_usd(usage, prices)
