"""Batch lifecycle and repair: cancel, pause, resume, retry failed items, find stale items.

Each change is one conditional UPDATE, so two operators (or two reconcilers on two hosts) can
run it at the same time: the second finds nothing left to change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from batchrouter.ledger.batches import find_batch
from batchrouter.ledger.models import Batch, BatchState, Item, ItemState, utcnow
from batchrouter.ledger.transitions import _count_done

ByTier = dict[str, list[int]]


def _by_tier(rows: list[tuple[int, str]]) -> ByTier:
    grouped: ByTier = defaultdict(list)
    for item_id, tier in rows:
        grouped[tier].append(item_id)
    return dict(grouped)


def cancel_batch(session: Session, batch_ref: str) -> int:
    """Drop the batch's queued items (running ones finish); return how many were dropped."""
    batch = find_batch(session, batch_ref)
    now = utcnow()
    session.execute(
        update(Batch).where(Batch.id == batch.id).values(state=BatchState.CANCELLED.value)
    )
    dropped = session.execute(
        update(Item)
        .where(Item.batch_id == batch.id, Item.state == ItemState.QUEUED.value)
        .values(state=ItemState.CANCELLED.value, error="batch cancelled", updated_at=now)
        .returning(Item.id)
    ).all()
    if dropped:
        _count_done(session, Counter({batch.id: len(dropped)}), now)
    return len(dropped)


def pause_batch(session: Session, batch_ref: str, reason: str = "paused by an operator") -> bool:
    """Workers leave a paused batch's queued items alone; calls already running finish."""
    batch = find_batch(session, batch_ref)
    result = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.state == BatchState.RUNNING.value)
        .values(state=BatchState.PAUSED.value, paused_reason=reason)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def resume_batch(session: Session, batch_ref: str) -> ByTier:
    """Let workers take the batch again; return its queued items by tier, to publish."""
    batch = find_batch(session, batch_ref)
    session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.state == BatchState.PAUSED.value)
        .values(state=BatchState.RUNNING.value, paused_reason=None)
    )
    rows = session.execute(
        select(Item.id, Item.tier).where(
            Item.batch_id == batch.id, Item.state == ItemState.QUEUED.value
        )
    ).all()
    return _by_tier([(i, t) for i, t in rows])


def retry_failed(session: Session, batch_ref: str) -> ByTier:
    """Queue the batch's failed items again on the tier where they failed, with a fresh
    attempt cap (attempt numbers continue); return them by tier, to publish."""
    batch = find_batch(session, batch_ref)
    now = utcnow()
    rows = session.execute(
        update(Item)
        .where(Item.batch_id == batch.id, Item.state == ItemState.FAILED.value)
        .values(
            state=ItemState.QUEUED.value,
            retry_base=Item.attempts,
            claims=0,
            claimed_by=None,
            updated_at=now,
        )
        .returning(Item.id, Item.tier)
    ).all()
    if rows:
        session.execute(
            update(Batch)
            .where(Batch.id == batch.id)
            .values(done=Batch.done - len(rows), finished_at=None, state=BatchState.RUNNING.value)
        )
    return _by_tier([(i, t) for i, t in rows])


def requeue_stale_running(session: Session, older_than_s: float) -> ByTier:
    """Items claimed longer ago than `older_than_s` whose worker never reported: queue them
    again. One statement, so reconcilers on several hosts requeue each item once."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    rows = session.execute(
        update(Item)
        .where(Item.state == ItemState.RUNNING.value, Item.claimed_at < cutoff)
        .values(state=ItemState.QUEUED.value, claimed_by=None, updated_at=utcnow())
        .returning(Item.id, Item.tier)
    ).all()
    return _by_tier([(i, t) for i, t in rows])


def queued_items_older_than(session: Session, older_than_s: float) -> ByTier:
    """Queued items of running batches that have waited longer than `older_than_s`."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    rows = session.execute(
        select(Item.id, Item.tier)
        .join(Batch, Batch.id == Item.batch_id)
        .where(
            Item.state == ItemState.QUEUED.value,
            Item.updated_at < cutoff,
            Batch.state == BatchState.RUNNING.value,
        )
    ).all()
    return _by_tier([(i, t) for i, t in rows])


@dataclass(frozen=True)
class FailedItem:
    external_id: str
    tier: str
    attempts: int
    error: str | None
    last_output: str | None


def failed_items(session: Session, batch_ref: str, limit: int = 1000) -> list[FailedItem]:
    batch = find_batch(session, batch_ref)
    rows = session.scalars(
        select(Item)
        .where(Item.batch_id == batch.id, Item.state == ItemState.FAILED.value)
        .order_by(Item.line_no)
        .limit(limit)
    )
    return [FailedItem(r.external_id, r.tier, r.attempts, r.error, r.output) for r in rows]
