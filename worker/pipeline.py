"""A chunk of item ids on one tier: claim, run every item concurrently, record, escalate.

Each call is journaled as it happens (worker/journal.py): a row before it, its outcome within
about a second after it. The items' outcomes are written in groups as they finish, each group
in one transaction (commit, then publish; worker/recorder.py): a redelivered message finds the
recorded items settled and continues the rest; an item whose
worker died mid-round is claimed again and continues from the calls its dead round made; an
escalated item is queued on the next tier in the ledger before its message is published.
A failure preparing one item (its batch's stored routing file, its template) fails that item
with the reason; it never leaves it running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import select

from ledger.db import session_scope, with_db_retry
from ledger.journal import take_over_dead_rounds
from ledger.models import Batch, ItemState
from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from ledger.transitions import claim_items, outcome_without_call, record_outcomes
from ledger.votes import earlier_votes
from routing.checks import ConsensusCheck
from routing.config import ConfigError, RoutingConfig, parse_config
from routing.settings import get_settings
from worker import loop
from worker.attempt import run_item
from worker.cache_hits import Prefetched, prefetch
from worker.callbacks import notify_batch_finished
from worker.journal import current_journal
from worker.lease import current_lease
from worker.publish import publish_items
from worker.recorder import record_as_finished
from worker.savings import premium_equivalent_usd

log = logging.getLogger("batchrouter.worker")

_configs: dict[str, tuple[str, RoutingConfig]] = {}  # batch id -> (task type, its routing config)
_refused: dict[str, str] = {}  # batch id -> why this host refuses its stored routing file
_configs_lock = threading.Lock()
Configs = dict[str, tuple[str, RoutingConfig] | str]  # batch id -> (task type, config) or error


class HandBack(Exception):
    """The chunk was stopped before its outcomes were written: requeue its message."""


@dataclass
class ChunkSummary:
    tier: str
    received: int
    claimed: int = 0
    recorded: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    escalated_to: dict[str, int] = field(default_factory=dict)
    waiting: int = 0  # items sent back to wait for their tier to come back (an outage)
    # one entry per recorded provider call: what metrics and logs need, never item text
    calls: list[dict] = field(default_factory=list)
    premium_usd: dict[str, float] = field(default_factory=dict)  # tier -> worker/savings.py

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
            "waiting": self.waiting,
        }


def process_chunk(item_ids: list[int], tier: str, token: str) -> ChunkSummary:
    """`token` identifies the broker message (its task id): see ledger.transitions.claim_items."""
    settings = get_settings()
    summary = ChunkSummary(tier=tier, received=len(item_ids))

    lease = current_lease()

    def claim() -> tuple[list[ClaimedItem], Configs, Prefetched]:
        with session_scope() as session:
            holder = lease.for_claim(session)  # claims are leases (worker/lease.py)
            claimed = claim_items(session, item_ids, tier, token, settings.max_claims, holder)
            dead = take_over_dead_rounds(session, claimed)
            claimed = [
                replace(item, dead_round=tuple(dead[item.id])) if item.id in dead else item
                for item in claimed
            ]
            batches = configs_or_reasons(session, {item.batch_id for item in claimed})
            runnable = [i for i in claimed if isinstance(batches[i.batch_id], tuple)]
            counting = [i for i in runnable if counts_votes(i, batches)]
            votes = earlier_votes(session, counting) if counting else {}
            claimed = [
                replace(item, votes=votes[item.id]) if item.id in votes else item
                for item in claimed
            ]
            # The response cache: one SELECT for the whole chunk, in the claim's transaction.
            runnable = [i for i in claimed if isinstance(batches[i.batch_id], tuple)]
            cached = prefetch(session, runnable, batches) if runnable else {}  # type: ignore[arg-type]
            return claimed, batches, cached

    claimed, batches, cached = with_db_retry(claim, what="claim")
    lease.claim_committed()
    summary.claimed = len(claimed)
    if not claimed:
        return summary  # a duplicate delivery: its work is done or owned by another worker

    # Outcomes are written in groups as items finish (worker/recorder.py); each group is
    # committed, then published, before the next is written.
    finished: queue.SimpleQueue = queue.SimpleQueue()
    future = loop.start(_run_all(claimed, batches, cached, on_finished=finished.put))
    try:
        record_as_finished(
            future,
            finished,
            len(claimed),
            lambda group: _record_group(group, batches, summary),
            settings.record_flush_s,
        )
        future.result()  # LedgerUnavailable: the unwritten items come back with the message
    except concurrent.futures.CancelledError:
        # The worker is stopping and its soft-shutdown time is up: the message goes back to
        # the queue; the groups written stay settled, and the other items, claimed again by
        # the same token, continue from what the journal kept of this round.
        left = len(claimed) - summary.recorded
        raise HandBack(f"tier {tier}: {left} items handed back unfinished") from None
    finally:
        loop.settled(future)
    # The one INFO line of a chunk (per-call lines are DEBUG: worker/attempt.py).
    log.info(
        "tier %s: %d received, %d claimed, %d recorded %s",
        tier,
        summary.received,
        summary.claimed,
        summary.recorded,
        {str(state): count for state, count in summary.by_state.items()},
    )
    return summary


def _record_group(outcomes: list[ItemOutcome], batches: Configs, summary: ChunkSummary) -> None:
    """Write one group of finished outcomes in one transaction, then publish what follows."""
    settings = get_settings()
    tier = summary.tier

    def record() -> tuple[list[ItemOutcome], list[str]]:
        with session_scope() as session:
            return record_outcomes(session, outcomes)

    written, finished_batches = with_db_retry(record, what="record")
    # Recorded: these items' journal entries need no write of their own.
    loop.get_loop().call_soon_threadsafe(_forget, [o.item_id for o in outcomes])
    summary.recorded += len(written)

    escalations: dict[str, list[int]] = defaultdict(list)
    waiting: list[ItemOutcome] = []
    for outcome in written:
        summary.by_state[outcome.next_state] = summary.by_state.get(outcome.next_state, 0) + 1
        if outcome.next_state == ItemState.QUEUED.value and not outcome.parked:
            escalations[outcome.next_tier].append(outcome.item_id)
        elif outcome.parked and outcome.resume_in_s is not None:
            waiting.append(outcome)
        summary.calls.extend(call_facts(a) for a in outcome.attempts)
        if isinstance(found := batches.get(outcome.batch_id), tuple):
            premium = premium_equivalent_usd(outcome, found[1], found[0])
            summary.premium_usd[tier] = summary.premium_usd.get(tier, 0.0) + premium
    for next_tier, ids in escalations.items():
        publish_items(ids, next_tier, settings.chunk_size)
        summary.escalated_to[next_tier] = summary.escalated_to.get(next_tier, 0) + len(ids)
    # Items whose tier is down come back later, together, as one delayed message (worker/
    # outage.py): no worker slot is held while they wait, and a group stays a group (one
    # message per item's own jitter made ever smaller messages, and a slow recovery). The
    # latest delay of the group, so none comes back before its circuit lets a probe through.
    # A publish lost here (a crash between the commit and this line) is repaired by the
    # reconciler, which republishes queued items that no message names.
    if waiting:
        delay = max(o.resume_in_s or 0.0 for o in waiting)
        publish_items([o.item_id for o in waiting], tier, settings.chunk_size, countdown=delay)
        summary.waiting += len(waiting)
    for batch_id in finished_batches:
        notify_batch_finished(batch_id)


def _forget(item_ids: list[int]) -> None:
    """On the loop's thread: the running loop's journal drops these recorded items' finals."""
    current_journal().forget(item_ids)


async def _run_all(
    claimed: list[ClaimedItem],
    batches: Configs,
    cached: Prefetched,
    on_finished: Callable[[ItemOutcome], object],
) -> None:
    """Run the items concurrently; each outcome goes to `on_finished` (from the loop's thread)
    as soon as its item ends, so the chunk's thread can record it (worker/recorder.py)."""
    slots = loop.in_flight_slots()
    journal = current_journal()

    async def one(item: ClaimedItem) -> ItemOutcome:
        outcome = await run_one(item)
        on_finished(outcome)
        return outcome

    async def run_one(item: ClaimedItem) -> ItemOutcome:
        found = batches[item.batch_id]
        if isinstance(found, str):  # its batch's routing file no longer loads
            return outcome_without_call(item, ItemState.FAILED.value, found)
        task_name, config = found
        try:
            deferred = not item.dead_round and config.is_deferred(task_name, item.tier)
            # The cache holds the answer a deferred call would get: judged here, not staged.
            deferred = deferred and not _cached_first_answer(item, config, cached)
        except Exception as exc:
            reason = f"could not run the item: {type(exc).__name__}: {exc}"
            return outcome_without_call(item, ItemState.FAILED.value, reason)
        if deferred:
            return stage_for_provider_batch(item)
        async with slots:
            return await run_item(
                item, config, task_name, journal=journal, cached=cached.get(item.id)
            )

    # LedgerUnavailable from one item ends the run: the groups written stay settled, the
    # other items come back with the message (at least once).
    await asyncio.gather(*(one(item) for item in claimed))


def counts_votes(item: ClaimedItem, batches: Configs) -> bool:
    """Whether the item's rung has a consensus, which counts the answers of earlier rounds."""
    found = batches[item.batch_id]
    if isinstance(found, str):
        return False
    task_name, config = found
    task = config.task_type(task_name)
    if item.tier not in task.tier_names:
        return False
    return any(isinstance(check, ConsensusCheck) for check in task.checks_for(item.tier))


def _cached_first_answer(item: ClaimedItem, config: RoutingConfig, cached: Prefetched) -> bool:
    """Whether the cache answers the call a deferred tier would send (its first deployment)."""
    hits = cached.get(item.id)
    if not hits:
        return False
    first = config.tier(item.tier).deployments[0]
    return any(hit.deployment == first for hit in hits.values())


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
        "cache_hit": record.cache_hit,
        # an audit call (worker/judging.py): whether it agreed with the accepted answer
        "agrees": record.verdicts[0].get("passed")
        if record.outcome == "audit" and record.error_class is None and record.verdicts
        else None,
    }


def stage_for_provider_batch(item: ClaimedItem) -> ItemOutcome:
    """A deferred tier makes no call here: the item waits in the ledger (state `deferred`)
    until the poller puts it into a provider batch (worker/deferred/)."""
    return outcome_without_call(item, ItemState.DEFERRED.value)


def configs_or_reasons(session, batch_ids: set[str]) -> Configs:  # type: ignore[no-untyped-def]
    """`batch_configs`, with a reason in place of each batch whose stored routing file this host
    refuses or cannot load: that fails the batch's items instead of leaving them running."""
    try:
        found: Configs = dict(batch_configs(session, batch_ids))
    except Exception as exc:  # one batch's file broke the lookup: take them one by one
        found = {}
        for batch_id in sorted(batch_ids):
            try:
                found.update(batch_configs(session, {batch_id}))
            except Exception as one:
                _refused[batch_id] = f"{type(one).__name__}: {one}"
        log.error("loading stored routing files failed: %s", exc)
    for batch_id in batch_ids - set(found):
        found[batch_id] = (
            f"this worker refuses the batch's stored routing file: {refusal(batch_id)}"
        )
    return found


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
