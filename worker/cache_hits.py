"""Serve claimed items from the response cache (ledger/cache.py) before any call is made.

For each claimed item whose task caches, the key of the request it would send to each
deployment of its tier (and of the tiers above it on the ladder) is computed exactly as the call path builds it (requests.item_messages and
requests.build_request), all keys of the chunk are looked up in one query, and a hit is judged
again by the task's current checks (they may have changed since it was stored): a hit that
passes settles the item as succeeded with a cost-0 attempt marked `cache_hit`; one that fails
is ignored and the item is called as usual. A hit needs no budget and no rate limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ledger.cache import CachedAnswer, lookup, request_key
from ledger.models import ItemState
from ledger.outcomes import USAGE_KEYS, AttemptRecord, ClaimedItem, ItemOutcome
from routing.checks import ConsensusCheck, judge
from routing.config import RoutingConfig, TaskType
from routing.templates import TemplateError
from routing.tokens import count_message_tokens, count_text_tokens
from routing.types import Message
from worker.requests import build_request, cache_policy, item_messages


@dataclass
class _Wanted:
    item: ClaimedItem
    config: RoutingConfig
    task: TaskType
    messages: list[Message]
    keys: list[tuple[str, str]]  # (deployment, key) in the tier's order


def serve_from_cache(
    session: Session, claimed: list[ClaimedItem], batches: dict[str, tuple[str, RoutingConfig]]
) -> dict[int, ItemOutcome]:
    """The outcomes of the claimed items the cache answers, by item id (one SELECT)."""
    wanted = []
    for item in claimed:
        task_name, config = batches[item.batch_id]
        task = config.task_type(task_name)
        if not task.cache:
            continue
        try:
            messages = item_messages(item, task)
        except TemplateError:
            continue  # not served; its call path fails it with the reason
        keys = []
        # This tier's deployments first, then those of the tiers above it: an answer a higher
        # tier already gave (and that passes the checks) costs nothing either, so an item that
        # climbed the ladder last night does not pay the cheap tier's failed call again.
        ladder = task.ladder[task.ladder.index(item.tier) :] if item.tier in task.ladder else []
        names = [n for tier in ladder or [item.tier] for n in config.tier(tier).deployments]
        for name in dict.fromkeys(names):
            deployment = config.deployments[name]
            request = build_request(task, name, deployment, messages, item, 1)
            keys.append((name, request_key(task.cache_namespace, name, request)))
        wanted.append(_Wanted(item, config, task, messages, keys))
    if not wanted:
        return {}
    found = lookup(session, [key for w in wanted for _, key in w.keys])
    served: dict[int, ItemOutcome] = {}
    for w in wanted:
        for name, key in w.keys:
            hit = found.get(key)
            outcome = None if hit is None else _outcome_of_hit(w, name, hit)
            if outcome is not None:
                served[w.item.id] = outcome
                break
    return served


def _outcome_of_hit(w: _Wanted, name: str, hit: CachedAnswer) -> ItemOutcome | None:
    # A consensus check judges the samples of a call; the stored answer already won its vote,
    # and a hit has no samples, so the other checks judge it.
    checks = [check for check in w.task.checks if not isinstance(check, ConsensusCheck)]
    judgement = judge(
        checks, hit.output, w.item.text, logprobs=hit.token_logprobs, fields=w.item.fields
    )
    if not judgement.passed:
        return None  # the checks changed since it was stored: call as usual
    deployment = w.config.deployments[name]
    try:
        prices = w.config.prices_for(name).model_dump()
    except KeyError:
        prices = {}
    record = AttemptRecord(
        attempt_no=w.item.attempt_no_base + w.item.attempts + 1,
        tier=w.item.tier,
        deployment=name,
        provider=deployment.provider,
        model=hit.model,
        outcome="passed",
        **_usage_of_hit(w, hit),  # the usage of the call that earned the answer
        cost_usd=0.0,
        prices=prices,
        latency_ms=0.0,  # no call: reports and metrics leave cache hits out of latency
        verdicts=[
            {"check": v.check, "passed": v.passed, "reason": v.reason, "score": v.score}
            for v in judgement.verdicts
        ],
        output=judgement.output,
        cache_hit=True,
        saved_usd=float(hit.cost_usd),  # exact again at the ledger (ledger.money.money)
        cache_key=hit.key,
    )
    return ItemOutcome(
        item_id=w.item.id,
        batch_id=w.item.batch_id,
        tier=w.item.tier,
        attempts=[record],
        next_state=ItemState.SUCCEEDED.value,
        next_tier=w.item.tier,
        output=record.output,
        deployment=name,
        model=hit.model,
        claim_no=w.item.claim_no,
        cache=cache_policy(w.task),
    )


def _usage_of_hit(w: _Wanted, hit: CachedAnswer) -> dict[str, Any]:
    """The token usage the cache kept of the call that earned `hit`; entries cached before
    migration 0009 kept none, and are estimated from the prompt and the answer (marked so)."""
    if hit.usage:
        return {key: hit.usage[key] for key in USAGE_KEYS if key in hit.usage}
    return {
        "input_tokens": count_message_tokens(w.messages, hit.model),
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
