"""Batch lifecycle and repair: cancel, pause, resume, retry failed items, find stale items.

Each change is one conditional UPDATE, so two operators (or two reconcilers on two hosts) can
run it at the same time: the second finds nothing left to change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from ledger.batches import find_batch
from ledger.models import Batch, BatchState, Item, ItemState, utcnow
from ledger.transitions import _count_done

ByTier = dict[str, list[int]]


def _by_tier(rows: list[tuple[int, str]]) -> ByTier:
    grouped: ByTier = defaultdict(list)
    for item_id, tier in rows:
        grouped[tier].append(item_id)
    return dict(grouped)


def cancel_batch(session: Session, batch_ref: str) -> int:
    """Drop the batch's queued items, the duplicates waiting for a leader and the items staged
    for a provider batch (running ones finish); return how many were dropped."""
    batch = find_batch(session, batch_ref)
    now = utcnow()
    session.execute(
        update(Batch).where(Batch.id == batch.id).values(state=BatchState.CANCELLED.value)
    )
    dropped = session.execute(
        update(Item)
        .where(
            Item.batch_id == batch.id,
            or_(
                Item.state.in_([ItemState.QUEUED.value, ItemState.WAITING.value]),
                # staged for a deferred tier, in no provider batch yet (one already sent is
                # billed whatever happens: its results are still written when it ends)
                and_(Item.state == ItemState.DEFERRED.value, Item.provider_batch_id.is_(None)),
            ),
        )
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
    attempt cap (attempt numbers continue); return them by tier, to publish.

    A failed duplicate (it shared its leader's failure) becomes an ordinary item on the task's
    entry tier: it never ran a ladder of its own.
    """
    batch = find_batch(session, batch_ref)
    now = utcnow()
    failed_followers = (
        Item.batch_id == batch.id,
        Item.state == ItemState.FAILED.value,
        Item.duplicate_of.is_not(None),
    )
    if session.execute(select(Item.id).where(*failed_followers).limit(1)).first() is not None:
        session.execute(  # queued below with the other failed items
            update(Item).where(*failed_followers).values(tier=_entry_tier(batch), duplicate_of=None)
        )
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


def _entry_tier(batch: Batch) -> str:
    from routing.config import parse_config

    # Only the ladder is needed: the checks' code is neither resolved nor imported here.
    config = parse_config(batch.config_yaml, batch.config_source, resolve_code=False)
    return config.task_type(batch.task_type).ladder[0].tier


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


def mark_republished(session: Session, item_ids: list[int], older_than_s: float) -> ByTier:
    """Of these queued items, take those still waiting longer than `older_than_s` and stamp
    them as republished now; return what this call took, by tier, to publish.

    A compare-and-set on `updated_at`: two reconcilers that both found an item stranded (on
    two hosts, or two overlapping runs) publish it once, because the second finds it freshly
    stamped. Only items about to be published are written, not every queued one.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    ids = sorted(item_ids)
    rows: list[tuple[int, str]] = []
    for start in range(0, len(ids), 1000):  # bounded IN lists
        taken = session.execute(
            update(Item)
            .where(
                Item.id.in_(ids[start : start + 1000]),
                Item.state == ItemState.QUEUED.value,
                Item.updated_at < cutoff,
            )
            .values(updated_at=utcnow())
            .returning(Item.id, Item.tier)
        )
        rows.extend((row.id, row.tier) for row in taken)
    return _by_tier(rows)


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
