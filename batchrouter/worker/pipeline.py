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

from batchrouter.ledger.db import session_scope
from batchrouter.ledger.models import Batch, ItemState
from batchrouter.ledger.transitions import (
    ClaimedItem,
    ItemOutcome,
    claim_items,
    record_outcomes,
)
from batchrouter.routing.config import RoutingConfig, parse_config
from batchrouter.settings import get_settings
from batchrouter.worker import loop
from batchrouter.worker.attempt import run_item
from batchrouter.worker.publish import publish_items

log = logging.getLogger("batchrouter.worker")

_configs: dict[str, tuple[str, RoutingConfig]] = {}  # batch id -> (task type, its routing config)
_configs_lock = threading.Lock()


@dataclass
class ChunkSummary:
    tier: str
    received: int
    claimed: int = 0
    recorded: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    escalated_to: dict[str, int] = field(default_factory=dict)


def process_chunk(item_ids: list[int], tier: str) -> ChunkSummary:
    summary = ChunkSummary(tier=tier, received=len(item_ids))
    with session_scope() as session:
        claimed = claim_items(session, item_ids, tier)
        batches = _batch_configs(session, {item.batch_id for item in claimed})
    summary.claimed = len(claimed)
    if not claimed:
        return summary  # a duplicate delivery: its work is done or owned by another worker

    outcomes = loop.run(_run_all(claimed, batches))

    with session_scope() as session:
        written = record_outcomes(session, outcomes)
    summary.recorded = len(written)

    escalations: dict[str, list[int]] = defaultdict(list)
    for outcome in written:
        summary.by_state[outcome.next_state] = summary.by_state.get(outcome.next_state, 0) + 1
        if outcome.next_state == ItemState.QUEUED.value:
            escalations[outcome.next_tier].append(outcome.item_id)
    for next_tier, ids in escalations.items():
        publish_items(ids, next_tier, get_settings().chunk_size)
        summary.escalated_to[next_tier] = len(ids)
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
    claimed: list[ClaimedItem], batches: dict[str, tuple[str, RoutingConfig]]
) -> list[ItemOutcome]:
    jobs = []
    for item in claimed:
        task_name, config = batches[item.batch_id]
        jobs.append(run_item(item, config, task_name))
    return list(await asyncio.gather(*jobs))


def _batch_configs(session, batch_ids: set[str]) -> dict[str, tuple[str, RoutingConfig]]:  # type: ignore[no-untyped-def]
    """Each batch runs under the routing file it was submitted with (kept in the ledger)."""
    missing = [batch_id for batch_id in batch_ids if batch_id not in _configs]
    if missing:
        rows = session.execute(
            select(Batch.id, Batch.task_type, Batch.config_yaml, Batch.config_source).where(
                Batch.id.in_(missing)
            )
        ).all()
        with _configs_lock:
            for batch_id, task_type, text, source in rows:
                _configs[batch_id] = (task_type, parse_config(text, source))
    return {batch_id: _configs[batch_id] for batch_id in batch_ids}
