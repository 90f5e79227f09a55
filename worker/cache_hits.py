"""The response cache (ledger/cache.py) on the call path: every call first asks the cache.

A cached answer is what that deployment answered to that very request before: one vote for its
deployment, never a whole verdict. It is judged by the rung's current checks exactly as a fresh
answer would be, so a batch ends the same with the cache warm, cold or off (and `evaluate`,
which has no cache, agrees with the pipeline); only the bill differs. A hit costs nothing,
needs no budget and no rate limit, and is recorded as an attempt marked `cache_hit`.

The keys of every call a chunk's items may make on their rung (each deployment of the tier,
the deployments a consensus there counts, the extra samples it may take) are computed exactly
as the call path builds them (requests.item_messages and requests.build_request) and looked up
in one SELECT when the chunk is claimed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ledger.cache import CachedAnswer, lookup, request_key
from ledger.outcomes import USAGE_KEYS, AttemptRecord, ClaimedItem
from routing.checks import ConsensusCheck
from routing.config import RoutingConfig
from routing.templates import TemplateError
from routing.tokens import count_message_tokens, count_text_tokens
from routing.types import Message
from worker.requests import build_request, item_messages

Prefetched = dict[int, dict[str, CachedAnswer]]  # item id -> cache key -> cached answer


def prefetch(
    session: Session, claimed: list[ClaimedItem], batches: dict[str, tuple[str, RoutingConfig]]
) -> Prefetched:
    """The cached answers of the calls the claimed items may make on their rung (one SELECT)."""
    wanted: dict[int, list[str]] = {}
    for item in claimed:
        task_name, config = batches[item.batch_id]
        task = config.task_type(task_name)
        if not task.cache or item.tier not in task.tier_names:
            continue
        try:
            messages = item_messages(item, task)
        except TemplateError:
            continue  # not looked up; its call path fails it with the reason
        calls: dict[tuple[str, int], None] = {}
        names = config.tier(item.tier).deployments
        for name in names:
            calls[(name, 0)] = None
        for check in task.checks_for(item.tier):
            if isinstance(check, ConsensusCheck):
                for name in check.deployments or []:
                    calls[(name, 0)] = None
                for name in names:
                    for sample in range(1, check.k or 1):
                        calls[(name, sample)] = None
        keys = []
        for name, sample in calls:
            request = build_request(task, name, config.deployments[name], messages, item, 1, sample)
            keys.append(request_key(task.cache_namespace, name, request))
        wanted[item.id] = keys
    if not wanted:
        return {}
    found = lookup(session, [key for keys in wanted.values() for key in keys])
    return {
        item_id: hits
        for item_id, keys in wanted.items()
        if (hits := {key: found[key] for key in keys if key in found})
    }


def hit_record(
    config: RoutingConfig,
    name: str,
    hit: CachedAnswer,
    attempt_no: int,
    tier: str,
    messages: list[Message],
) -> AttemptRecord:
    """The attempt a cache hit is recorded as: cost 0, saving what the call that earned it
    cost, its outcome set by the judging like any answer."""
    deployment = config.deployments[name]
    try:
        prices = config.prices_for(name).model_dump()
    except KeyError:
        prices = {}
    return AttemptRecord(
        attempt_no=attempt_no,
        tier=tier,
        deployment=name,
        provider=deployment.provider,
        model=hit.model,
        outcome="error",
        **_usage_of_hit(messages, hit),  # the usage of the call that earned the answer
        cost_usd=0.0,
        prices=prices,
        latency_ms=0.0,  # no call: reports and metrics leave cache hits out of latency
        output=hit.output,
        answer=hit.output,
        cache_hit=True,
        saved_usd=float(hit.cost_usd),  # exact again at the ledger (ledger.money.money)
        cache_key=hit.key,
        token_logprobs=hit.token_logprobs,
    )


def _usage_of_hit(messages: list[Message], hit: CachedAnswer) -> dict[str, Any]:
    """The token usage the cache kept of the call that earned `hit`; entries cached before
    migration 0009 kept none, and are estimated from the prompt and the answer (marked so)."""
    if hit.usage:
        return {key: hit.usage[key] for key in USAGE_KEYS if key in hit.usage}
    return {
        "input_tokens": count_message_tokens(messages, hit.model),
        "output_tokens": count_text_tokens(hit.output, hit.model),
        "usage_estimated": True,
    }


def item_cache_key(
    item: ClaimedItem, config: RoutingConfig, task_name: str, deployment_name: str
) -> str | None:
    """The cache key of the request `item` sends to `deployment_name` (None: the task does not
    cache). For calls made elsewhere (the deferred path) to set AttemptRecord.cache_key."""
    task = config.task_type(task_name)
    if not task.cache:
        return None
    deployment = config.deployments[deployment_name]
    request = build_request(task, deployment_name, deployment, item_messages(item, task), item, 1)
    return request_key(task.cache_namespace, deployment_name, request)
