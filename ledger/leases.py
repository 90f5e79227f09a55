"""Claims are leases: a worker process's claims stand while its heartbeat renews its lease.

Each worker process has one row in `worker_leases` (its holder name, host:pid:nonce, and when
its lease ends). A claim writes the holder into the item (`items.lease_holder`); the process's
heartbeat (worker/lease.py) moves `expires_at` forward every third of the lease. A process
that dies, or is cut off from the ledger, stops renewing: once its lease has lapsed the
reconciler puts its running items back on their queues in one compare-and-set UPDATE, so
reconcilers on several hosts requeue each item once. The next claim gets a new claim number,
and a late result of the old claim is refused (ledger/transitions.py) or kept as a superseded
call (ledger/superseded.py).

A live process's claims are never taken, however long its calls run. Items claimed before
leases existed (no holder) still fall back to the claim's age.

Times are each host's clock (UTC): hosts sharing a ledger must keep their clocks in step
(NTP); a skew of s seconds moves a takeover by s seconds.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from ledger.lifecycle import ByTier, _by_tier
from ledger.models import Item, ItemState, WorkerLease, utcnow


def renew_lease(session: Session, holder: str, lease_s: float) -> None:
    """Start or extend `holder`'s lease to now + `lease_s`."""
    from sqlalchemy.dialects import postgresql, sqlite

    now = utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {"holder": holder, "expires_at": now + timedelta(seconds=lease_s), "renewed_at": now}
    statement = dialect.insert(WorkerLease).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["holder"],
            set_={"expires_at": values["expires_at"], "renewed_at": now},
        )
    )


def release_lease(session: Session, holder: str) -> None:
    """A stopping worker's lease ends now: whatever it still holds can be taken at once."""
    session.execute(delete(WorkerLease).where(WorkerLease.holder == holder))


def running_holders(session: Session) -> list[str]:
    """The lease holders of running items (for the reconciler's same-host check)."""
    return list(
        session.scalars(
            select(Item.lease_holder)
            .where(Item.state == ItemState.RUNNING.value, Item.lease_holder.is_not(None))
            .distinct()
        )
    )


def requeue_lapsed_claims(
    session: Session, unleased_older_than_s: float, dead_holders: list[str] | None = None
) -> ByTier:
    """Queue again every running item whose holder's lease has lapsed (or whose holder is
    known dead: `dead_holders`); items claimed without a lease, only once their claim is older
    than `unleased_older_than_s`. Return them by tier, to publish."""
    now = utcnow()
    live = select(WorkerLease.holder).where(WorkerLease.expires_at >= now)
    lapsed = and_(Item.lease_holder.is_not(None), Item.lease_holder.not_in(live))
    conditions = [
        lapsed,
        and_(
            Item.lease_holder.is_(None),
            Item.claimed_at < now - timedelta(seconds=unleased_older_than_s),
        ),
    ]
    if dead_holders:
        conditions.append(Item.lease_holder.in_(dead_holders))
    rows = session.execute(
        update(Item)
        .where(Item.state == ItemState.RUNNING.value, or_(*conditions))
        .values(state=ItemState.QUEUED.value, claimed_by=None, lease_holder=None, updated_at=now)
        .returning(Item.id, Item.tier)
    ).all()
    return _by_tier([(i, t) for i, t in rows])


def purge_lapsed_leases(session: Session, older_than_s: float = 3600.0) -> int:
    """Delete the rows of leases that lapsed long ago (workers that died or stopped)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    result = session.execute(delete(WorkerLease).where(WorkerLease.expires_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
