"""The ledger side of deferred tiers: staged items become provider batches, whose progress is
recorded step by step so that a poller killed at any point neither loses items nor sends them
twice (worker/deferred/poller.py drives these steps).

An item on a deferred tier moves `queued -> running -> deferred` (staged by a worker, no
provider batch yet), then gets a `provider_batch_id` here, then is settled from the provider's
results like any other call's outcome. A provider batch moves
`prepared -> submitting -> submitted -> ended -> ingested`; see models.ProviderBatchState.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ledger.models import (
    Batch,
    BatchState,
    Item,
    ItemState,
    ProviderBatch,
    ProviderBatchState,
    utcnow,
)
from ledger.outcomes import ClaimedItem, ItemOutcome
from ledger.transitions import claimed_item, record_outcomes

OPEN_STATES = (
    ProviderBatchState.PREPARED.value,
    ProviderBatchState.SUBMITTING.value,
    ProviderBatchState.SUBMITTED.value,
    ProviderBatchState.ENDED.value,
)


@dataclass(frozen=True)
class StagedGroup:
    """Staged items of one ledger batch on one tier: they go to the same deployment."""

    batch_id: str
    tier: str
    count: int
    oldest: datetime


def staged_groups(session: Session) -> list[StagedGroup]:
    rows = session.execute(
        select(Item.batch_id, Item.tier, func.count(), func.min(Item.updated_at))
        .where(Item.state == ItemState.DEFERRED.value, Item.provider_batch_id.is_(None))
        .group_by(Item.batch_id, Item.tier)
    ).all()
    return [StagedGroup(b, t, n, _aware(oldest)) for b, t, n, oldest in rows]


def staged_items(session: Session, batch_id: str, tier: str) -> list[ClaimedItem]:
    """The group's staged items, locked (PostgreSQL skips rows another poller holds; SQLite's
    write transaction, taken at BEGIN IMMEDIATE, already excludes every other writer, and
    create_provider_batch checks that each item was still staged)."""
    rows = session.execute(
        select(Item)
        .where(
            Item.batch_id == batch_id,
            Item.tier == tier,
            Item.state == ItemState.DEFERRED.value,
            Item.provider_batch_id.is_(None),
        )
        .order_by(Item.id)
        .with_for_update(skip_locked=True)
    ).scalars()
    return [claimed_item(item) for item in rows]


def create_provider_batch(
    session: Session,
    *,
    batch_id: str,
    tier: str,
    deployment: str,
    provider: str,
    model: str,
    item_ids: list[int],
    request_bytes: int,
) -> str:
    """Record a provider batch and assign its items, before anything is sent: our id is the
    marker the provider will see, so the batch can be found again after a crash."""
    pb_id = uuid.uuid4().hex
    now = utcnow()
    session.add(
        ProviderBatch(
            id=pb_id,
            batch_id=batch_id,
            tier=tier,
            deployment=deployment,
            provider=provider,
            model=model,
            state=ProviderBatchState.PREPARED.value,
            request_count=len(item_ids),
            request_bytes=request_bytes,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    assigned = session.execute(
        update(Item)
        .where(
            Item.id.in_(item_ids),
            Item.state == ItemState.DEFERRED.value,
            Item.provider_batch_id.is_(None),
        )
        .values(provider_batch_id=pb_id, updated_at=now)
    )
    if assigned.rowcount != len(item_ids):  # type: ignore[attr-defined]
        # Another poller assigned some of them since staged_items read them: never leave a
        # provider batch that counts requests it does not hold (it would be sent short, or
        # empty, and counted as formed). The caller's transaction rolls back.
        raise StagedItemsTaken(
            f"{len(item_ids) - assigned.rowcount} of {len(item_ids)} staged items were "  # type: ignore[attr-defined]
            "taken by another poller"
        )
    return pb_id


class StagedItemsTaken(RuntimeError):
    """Items read as staged were no longer staged when assigned (a second poller got there)."""


def open_provider_batches(session: Session) -> list[ProviderBatch]:
    rows = session.execute(
        select(ProviderBatch)
        .where(ProviderBatch.state.in_(OPEN_STATES))
        .order_by(ProviderBatch.created_at)
    ).scalars()
    batches = list(rows)
    session.expunge_all()  # plain records: the poller reads them after this session ends
    return batches


def items_of(session: Session, pb_id: str) -> list[ClaimedItem]:
    """The items a provider batch still holds (settled ones are gone from this list)."""
    rows = session.execute(
        select(Item)
        .where(Item.provider_batch_id == pb_id, Item.state == ItemState.DEFERRED.value)
        .order_by(Item.id)
    ).scalars()
    return [claimed_item(item) for item in rows]


def move(
    session: Session,
    pb_id: str,
    seen: str,
    to: str,
    *,
    stale_before: datetime | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set the provider batch's state: True when this call made the change.

    Two pollers (the beat task and an operator's `batchrouter deferred poll`) may look at the
    same provider batch; only the one whose update matches goes on to talk to the provider.
    `stale_before` also requires the row not to have changed since then (a `submitting` row
    is only taken over once its first poller had time to finish or die).
    """
    now = utcnow()
    conditions = [ProviderBatch.id == pb_id, ProviderBatch.state == seen]
    if stale_before is not None:
        conditions.append(ProviderBatch.updated_at < stale_before)
    result = session.execute(
        update(ProviderBatch).where(*conditions).values(state=to, updated_at=now, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def note(session: Session, pb_id: str, **values: Any) -> None:
    """Record facts about a provider batch (file id, provider status) without a state change."""
    session.execute(
        update(ProviderBatch).where(ProviderBatch.id == pb_id).values(updated_at=utcnow(), **values)
    )


def settle_items(
    session: Session, pb_id: str, outcomes: list[ItemOutcome]
) -> tuple[list[ItemOutcome], list[str]]:
    """Write the outcomes of a provider batch's items: the same write as a worker's chunk
    (attempt rows, next state, cache, duplicates, batch completion).

    Idempotent: only items still `deferred` in this provider batch are written, so ingesting
    the same results twice (a poller killed after its commit, before marking the batch
    ingested) writes nothing the second time.
    """
    return record_outcomes(session, outcomes, provider_batch_id=pb_id)


def unfinished_deferred_batches(session: Session) -> int:
    """Running batches that have used a deferred tier and are not finished: their items may
    still come back to a deferred tier (sent back, or escalated to another deferred rung)."""
    uses_deferred = select(ProviderBatch.batch_id).distinct()
    return int(
        session.scalar(
            select(func.count())
            .select_from(Batch)
            .where(
                Batch.finished_at.is_(None),
                Batch.state == BatchState.RUNNING.value,
                Batch.id.in_(uses_deferred),
            )
        )
        or 0
    )


def batch_is_live(session: Session, batch_id: str) -> bool:
    state = session.scalar(select(Batch.state).where(Batch.id == batch_id))
    return state == BatchState.RUNNING.value


def stale_cutoff(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; the ledger writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
