"""A chunk of item ids on one tier: claim, run every item concurrently, record, escalate.

The ledger write for the whole chunk is one transaction (commit, then publish): a redelivered
message finds its items settled and does nothing; an escalated item is queued on the next tier
in the ledger before its message is published.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from ledger.db import session_scope, with_db_retry
from ledger.models import Batch, ItemState
from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from ledger.transitions import claim_items, outcome_without_call, record_outcomes
from routing.config import ConfigError, RoutingConfig, parse_config
from routing.settings import get_settings
from worker import loop
from worker.attempt import run_item
from worker.cache_hits import serve_from_cache
from worker.callbacks import notify_batch_finished
from worker.publish import publish_items

log = logging.getLogger("batchrouter.worker")

_configs: dict[str, tuple[str, RoutingConfig]] = {}  # batch id -> (task type, its routing config)
_refused: dict[str, str] = {}  # batch id -> why this host refuses its stored routing file
_configs_lock = threading.Lock()
Configs = dict[str, tuple[str, RoutingConfig]]  # batch id -> (task type, routing config)


@dataclass
class ChunkSummary:
    tier: str
    received: int
    claimed: int = 0
    recorded: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    escalated_to: dict[str, int] = field(default_factory=dict)
    # one entry per recorded provider call: what metrics and logs need, never item text
    calls: list[dict] = field(default_factory=list)

    def counts(self) -> dict:
        """What the task returns (Flower shows it): counts by tier and state, no per-call
        model, cost, tokens or latency."""
        return {
            "tier": self.tier,
            "received": self.received,
            "claimed": self.claimed,
            "recorded": self.recorded,
            "by_state": dict(self.by_state),
            "escalated_to": dict(self.escalated_to),
        }


def process_chunk(item_ids: list[int], tier: str, token: str) -> ChunkSummary:
    """`token` identifies the broker message (its task id): see ledger.transitions.claim_items."""
    settings = get_settings()
    summary = ChunkSummary(tier=tier, received=len(item_ids))

    def claim() -> tuple[list[ClaimedItem], Configs, dict[int, ItemOutcome]]:
        with session_scope() as session:
            claimed = claim_items(session, item_ids, tier, token, settings.max_claims)
            batches = batch_configs(session, {item.batch_id for item in claimed})
            runnable = [item for item in claimed if item.batch_id in batches]
            # the response cache: one SELECT for the whole chunk, in the claim's transaction
            served = serve_from_cache(session, runnable, batches) if runnable else {}
            return claimed, batches, served

    claimed, batches, served = with_db_retry(claim, what="claim")
    summary.claimed = len(claimed)
    if not claimed:
        return summary  # a duplicate delivery: its work is done or owned by another worker

    outcomes = loop.run(_run_all(claimed, batches, served))

    def record() -> tuple[list[ItemOutcome], list[str]]:
        with session_scope() as session:
            return record_outcomes(session, outcomes)

    written, finished_batches = with_db_retry(record, what="record")
    summary.recorded = len(written)

    escalations: dict[str, list[int]] = defaultdict(list)
    for outcome in written:
        summary.by_state[outcome.next_state] = summary.by_state.get(outcome.next_state, 0) + 1
        if outcome.next_state == ItemState.QUEUED.value and not outcome.parked:
            escalations[outcome.next_tier].append(outcome.item_id)
        summary.calls.extend(call_facts(a) for a in outcome.attempts)
    for next_tier, ids in escalations.items():
        publish_items(ids, next_tier, settings.chunk_size)
        summary.escalated_to[next_tier] = len(ids)
    for batch_id in finished_batches:
        notify_batch_finished(batch_id)
    log.info(
        "tier %s: %d received, %d claimed, %d recorded %s",
        tier,
        summary.received,
        summary.claimed,
        summary.recorded,
        summary.by_state,
    )
    return summary


async def _run_all(
    claimed: list[ClaimedItem],
    batches: dict[str, tuple[str, RoutingConfig]],
    served: dict[int, ItemOutcome] | None = None,
) -> list[ItemOutcome]:
    slots = loop.in_flight_slots()
    served = served or {}

    async def one(item: ClaimedItem) -> ItemOutcome:
        if item.id in served:  # a cache hit wins over a call and over deferred staging
            return served[item.id]
        if item.batch_id not in batches:  # nothing of its routing file was imported or run
            reason = (
                f"this worker refuses the batch's stored routing file: {refusal(item.batch_id)}"
            )
            return outcome_without_call(item, ItemState.FAILED.value, reason)
        task_name, config = batches[item.batch_id]
        if config.is_deferred(task_name, item.tier):
            return stage_for_provider_batch(item)
        async with slots:
            return await run_item(item, config, task_name)

    return list(await asyncio.gather(*(one(item) for item in claimed)))


def call_facts(record: AttemptRecord) -> dict:
    """What metrics and logs need of one recorded call, never item text."""
    return {
        "tier": record.tier,
        "deployment": record.deployment,
        "model": record.model,
        "outcome": record.outcome,
        "error_class": record.error_class,
        "cost_usd": record.cost_usd,
        "latency_ms": record.latency_ms,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
    }


def stage_for_provider_batch(item: ClaimedItem) -> ItemOutcome:
    """A deferred tier makes no call here: the item waits in the ledger (state `deferred`)
    until the poller puts it into a provider batch (worker/deferred/)."""
    return outcome_without_call(item, ItemState.DEFERRED.value)


def batch_configs(session, batch_ids: set[str]) -> dict[str, tuple[str, RoutingConfig]]:  # type: ignore[no-untyped-def]
    """Each batch runs under the routing file it was submitted with (kept in the ledger).

    The stored copy is loaded under this host's rules, as at submit: a file this host refuses
    (a check off its allow-list, a template outside the plain-{field} rule: the ledger's copy
    was edited, or this host allows less than the submitting one) is left out of the result,
    with nothing of it imported; `refusal(batch_id)` says why.
    """
    missing = [b for b in batch_ids if b not in _configs and b not in _refused]
    if missing:
        rows = session.execute(
            select(Batch.id, Batch.task_type, Batch.config_yaml, Batch.config_source).where(
                Batch.id.in_(missing)
            )
        ).all()
        with _configs_lock:
            for batch_id, task_type, text, source in rows:
                try:
                    _configs[batch_id] = (task_type, parse_config(text, source))
                except ConfigError as exc:
                    log.error("batch %s: its stored routing file is refused: %s", batch_id, exc)
                    _refused[batch_id] = str(exc)
    return {batch_id: _configs[batch_id] for batch_id in batch_ids if batch_id in _configs}


def refusal(batch_id: str) -> str:
    """Why batch_configs left this batch out."""
    return _refused.get(batch_id, "its routing file could not be loaded")
