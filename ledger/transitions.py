"""The worker's writes: claim items, then record each item's attempts and its next state.

Every change is a compare-and-set on (state, tier), so a message delivered twice finds its
items already claimed or settled and changes nothing, and (item_id, attempt_no) is unique, so no
call is recorded or charged twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from ledger.cache import record_cache_writes
from ledger.dedup import LeaderEnd, last_judged, settle_followers
from ledger.held import lock_held
from ledger.journal import attempt_row, upsert_attempts
from ledger.models import (
    TERMINAL_STATES,
    Batch,
    BatchState,
    Item,
    ItemState,
    utcnow,
)
from ledger.outcomes import ClaimedItem, ItemOutcome
from ledger.superseded import refresh_adopted, write_superseded


def claim_items(
    session: Session,
    item_ids: Sequence[int],
    tier: str,
    token: str,
    max_claims: int = 5,
    lease_holder: str | None = None,
) -> list[ClaimedItem]:
    """Move the given items from queued to running on `tier`; return those this call moved.

    `token` is the broker message's task id. A redelivery of the same message (its worker died
    or shut down) takes back the items it had claimed; any other message finds them taken.
    Items of paused or cancelled batches are left alone. An item claimed `max_claims` times
    without an outcome (its worker died each time) is failed rather than tried forever.
    `lease_holder`: the worker process whose lease (ledger/leases.py) holds the claims.
    """
    if not item_ids:
        return []
    now = utcnow()
    claimed = session.execute(
        _CLAIM,
        {"c_ids": list(item_ids), "c_tier": tier, "c_token": token, "c_holder": lease_holder,
         "c_now": now},
    ).all()  # fmt: skip
    poisoned = [row.id for row in claimed if row.claims > max_claims]
    if poisoned:
        _fail_poisoned(session, poisoned, max_claims, now)
    return [
        claimed_item(row) for row in sorted(claimed, key=lambda r: r.id) if row.claims <= max_claims
    ]


_ITEMS = cast(Table, Item.__table__)
_BATCHES = cast(Table, Batch.__table__)
# Core statements on the tables, built once: the ORM's bulk UPDATE synchronized a session that
# holds nothing, and a statement built per chunk had its cache key computed again each time
# (together a fifth of a worker's CPU per chunk in a profile at one item per chunk).
_CLAIM = (
    update(_ITEMS)
    .where(
        _ITEMS.c.id.in_(bindparam("c_ids", expanding=True)),
        _ITEMS.c.tier == bindparam("c_tier"),
        or_(
            _ITEMS.c.state == ItemState.QUEUED.value,
            and_(
                _ITEMS.c.state == ItemState.RUNNING.value,
                _ITEMS.c.claimed_by == bindparam("c_token"),
            ),
        ),
        _ITEMS.c.batch_id.in_(
            select(_BATCHES.c.id).where(_BATCHES.c.state == BatchState.RUNNING.value)
        ),
    )
    .values(
        state=ItemState.RUNNING.value,
        claimed_at=bindparam("c_now"),
        claimed_by=bindparam("c_token"),
        lease_holder=bindparam("c_holder"),
        claims=_ITEMS.c.claims + 1,
        updated_at=bindparam("c_now"),
    )
    # one round trip: the claimed rows come back with what the worker needs
    .returning(
        _ITEMS.c.id,
        _ITEMS.c.claims,
        _ITEMS.c.batch_id,
        _ITEMS.c.external_id,
        _ITEMS.c.text,
        _ITEMS.c.expected,
        _ITEMS.c.fields,
        _ITEMS.c.tier,
        _ITEMS.c.attempts,
        _ITEMS.c.retry_base,
        _ITEMS.c.cost_usd,
        _ITEMS.c.output,
        _ITEMS.c.error,
    )  # fmt: skip
)


def claimed_item(row: Any) -> ClaimedItem:
    """A ClaimedItem from an items row (a RETURNING row or an Item) held by a claim."""
    return ClaimedItem(
        id=row.id,
        batch_id=row.batch_id,
        external_id=row.external_id,
        text=row.text,
        expected=row.expected,
        fields=dict(row.fields or {}),
        tier=row.tier,
        attempts=row.attempts - row.retry_base,
        attempt_no_base=row.retry_base,
        cost_usd=float(row.cost_usd or 0),  # the worker decides in floats (spend caps)
        last_output=row.output,
        last_error=row.error,
        claim_no=row.claims,
    )


def outcome_without_call(item: ClaimedItem, state: str, error: str | None = None) -> ItemOutcome:
    """An outcome that records no attempt: staged for a provider batch, sent back to its
    queue, or failed before any call. The item stays on its tier."""
    return ItemOutcome(
        item_id=item.id,
        batch_id=item.batch_id,
        tier=item.tier,
        attempts=[],
        next_state=state,
        next_tier=item.tier,
        error=error,
        claim_no=item.claim_no,
    )


def _fail_poisoned(session: Session, item_ids: list[int], max_claims: int, now: Any) -> None:
    # Each claim ended without a settled outcome: its worker died, or (deferred tiers) its
    # provider batches expired or were cancelled before answering it.
    error = (
        f"claimed {max_claims} times without an outcome (its worker died, or its provider "
        "batch expired, each time)"
    )
    rows = session.execute(
        update(Item)
        .where(Item.id.in_(item_ids), Item.state == ItemState.RUNNING.value)
        .values(
            state=ItemState.FAILED.value,
            error=error,
            updated_at=now,
        )
        .returning(
            Item.id,
            Item.batch_id,
            Item.tier,
            Item.output,
            Item.deployment,
            Item.model,
            Item.duplicates,
        )  # fmt: skip
    ).all()
    finished = Counter(row.batch_id for row in rows)
    leaders = [
        LeaderEnd(
            row.id,
            ItemState.FAILED.value,
            row.output,
            row.deployment,
            row.model,
            row.tier,
            error,
            None,
        )  # fmt: skip
        for row in rows
        if row.duplicates
    ]
    if leaders:  # its followers fail with it, without an attempt of their own
        finished.update(settle_followers(session, leaders, now))
    _count_done(session, finished, now)


def record_outcomes(
    session: Session, outcomes: Sequence[ItemOutcome], *, provider_batch_id: str | None = None
) -> tuple[list[ItemOutcome], list[str]]:
    """Write each outcome whose claim is still current; return them and the batches finished.

    The items are held by a worker's claim (`running`), or, with `provider_batch_id`, by that
    provider batch (`deferred`): the poller ingests its results through this same write.

    A chunk is written in three statements, not two per item (round trips dominated the
    worker's time): lock the chunk's rows and keep the outcomes whose claim is still current,
    update those items in one executemany, insert all their attempt rows in one more.
    """
    if not outcomes:
        return [], []
    now = utcnow()
    # FOR UPDATE holds the rows until commit, so no reconciler, later claim or twin writer can
    # change them between this check and the write. SQLite ignores FOR UPDATE: there, the
    # session's BEGIN IMMEDIATE (ledger/db.py) holds the database's write lock from this read.
    duplicates: dict[int, int] = {}
    current = set()
    for row in lock_held(session, (o.item_id for o in outcomes), provider_batch_id):
        current.add((row.id, row.tier, row.claims))
        duplicates[row.id] = row.duplicates or 0
    written = [o for o in outcomes if (o.item_id, o.tier, o.claim_no) in current]
    if provider_batch_id is None and len(written) < len(outcomes):
        # A claim taken over (its lease lapsed): its outcome is refused, but the calls it
        # made were paid; they land on the rows the takeover left for them (superseded.py).
        refused = [o for o in outcomes if (o.item_id, o.tier, o.claim_no) not in current]
        calls = [(o.item_id, o.claim_no, r) for o in refused for r in o.attempts]
        write_superseded(session, calls)
    if not written:
        return [], []
    refresh_adopted(session, written)  # lost calls of a dead round, since written by it
    session.execute(
        _OUTCOME_UPDATE,
        [
            {
                "b_id": o.item_id,
                "b_state": o.next_state,
                "b_tier": o.next_tier,
                "b_calls": len(o.attempts),
                "b_given_back": 1 if o.parked and o.next_state == ItemState.QUEUED.value else 0,
                "b_forgiven": o.attempts_given_back,
                "b_spent": sum(a.cost_usd for a in o.attempts),
                "b_error": o.error,
                "b_output": o.output,
                "b_deployment": o.deployment if o.output is not None else None,
                "b_model": o.model if o.output is not None else None,
                "b_now": now,
            }
            for o in written
        ],
    )
    # Upserts: the journal (ledger/journal.py) already wrote most of these rows as the calls
    # happened; this write is the authoritative one, and records each call once.
    upsert_attempts(
        session,
        [
            attempt_row(o.item_id, o.batch_id, r, now, o.claim_no)
            for o in written
            for r in o.attempts
        ],
    )
    record_cache_writes(session, written)
    for outcome in written:
        if outcome.pause_reason:
            session.execute(
                update(Batch)
                .where(Batch.id == outcome.batch_id, Batch.state == BatchState.RUNNING.value)
                .values(state=BatchState.PAUSED.value, paused_reason=outcome.pause_reason)
            )
    finished = Counter(o.batch_id for o in written if o.next_state in TERMINAL_STATES)
    # Only leaders that settled have followers to settle: other chunks pay no query.
    leaders = [_leader_end(o) for o in written if duplicates.get(o.item_id) and _settled(o)]
    if leaders:
        finished.update(settle_followers(session, leaders, now))
    return written, _count_done(session, finished, now)


# Core, not ORM: an executemany with per-row values, built once (statement construction was a
# measurable share of a chunk's CPU time).
_OUTCOME_UPDATE = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        tier=bindparam("b_tier"),
        attempts=_ITEMS.c.attempts + bindparam("b_calls"),
        # A parked round gives its claim back: waiting (an outage, a budget) is not a claim
        # that died, and must not count towards max_claims. The count still only grows while
        # an item runs, so a stale claim number never matches a later claim.
        claims=_ITEMS.c.claims - bindparam("b_given_back"),
        # Unbilled calls an outage cut (worker/outage.py) leave the attempt cap, as a `retry`
        # does: attempt numbers continue, the cap counts from the new base.
        retry_base=_ITEMS.c.retry_base + bindparam("b_forgiven"),
        cost_usd=_ITEMS.c.cost_usd + bindparam("b_spent"),
        error=bindparam("b_error"),
        # a round with no output (parked, or a tier skipped) keeps the best one so far
        output=func.coalesce(bindparam("b_output"), _ITEMS.c.output),
        deployment=func.coalesce(bindparam("b_deployment"), _ITEMS.c.deployment),
        model=func.coalesce(bindparam("b_model"), _ITEMS.c.model),
        provider_batch_id=None,  # a worker's outcome: in no provider batch (any more)
        updated_at=bindparam("b_now"),
    )
)


def _settled(outcome: ItemOutcome) -> bool:
    return outcome.next_state in (ItemState.SUCCEEDED.value, ItemState.FAILED.value)


def _leader_end(outcome: ItemOutcome) -> LeaderEnd:
    return LeaderEnd(
        item_id=outcome.item_id,
        state=outcome.next_state,
        output=outcome.output,
        deployment=outcome.deployment if outcome.output is not None else None,
        model=outcome.model if outcome.output is not None else None,
        tier=outcome.next_tier,
        error=outcome.error,
        last=last_judged(outcome.attempts),
    )


def _count_done(session: Session, finished: Counter[str], now: Any) -> list[str]:
    """Add newly settled items to their batches; return the batches this call finished."""
    completed = []
    for batch_id, count in finished.items():
        done, total = session.execute(_COUNT_DONE, {"d_batch": batch_id, "d_count": count}).one()
        if done >= total:
            marked = session.execute(_MARK_FINISHED, {"d_batch": batch_id, "d_now": now})
            if marked.rowcount == 1:  # type: ignore[attr-defined]
                completed.append(batch_id)
    return completed


_COUNT_DONE = (
    update(_BATCHES)
    .where(_BATCHES.c.id == bindparam("d_batch"))
    .values(done=_BATCHES.c.done + bindparam("d_count"))
    .returning(_BATCHES.c.done, _BATCHES.c.total)
)
_MARK_FINISHED = (
    update(_BATCHES)
    .where(_BATCHES.c.id == bindparam("d_batch"), _BATCHES.c.finished_at.is_(None))
    .values(finished_at=bindparam("d_now"))
)
