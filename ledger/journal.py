"""Attempt rows written as calls happen, so that no billed call is missing from the ledger.

A provider call leaves a row before it starts and completes that row when it ends:

1. **Intent.** Before the call, an `in_flight` attempt row carrying the call's estimated cost
   (its prompt plus its whole output limit) is written, but only while the item's claim is
   current. A worker whose claim was taken over makes no call.
2. **Final.** When the call's outcome is known, the row is updated to it (real usage and
   cost, verdicts, output), in small groups within about a second, not once per chunk.
3. **The chunk's outcome** (ledger/transitions.py) upserts every row of the round again, with
   the item's state change, in one transaction: the authoritative write.

A worker killed in the middle leaves `in_flight` rows behind. The next claim of the item turns
them into errors of class `lost_in_flight` that keep the estimate, flagged `usage_estimated`
("outcome unknown, may be billed"), so the ledger's spend stays an upper bound of the invoice.
Rows of the dead round that reached a verdict are handed to the new round, which settles the
item from them without calling again (worker/attempt.py, `resume`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.orm import Session

from ledger.held import lock_held
from ledger.models import Attempt, Item, utcnow
from ledger.outcomes import USAGE_KEYS, AttemptRecord, ClaimedItem
from ledger.upserts import upsert

IN_FLIGHT = "in_flight"
LOST_CLASS = "lost_in_flight"
LOST_MESSAGE = "the worker stopped during the call: outcome unknown, may be billed (estimated)"

# The columns an attempt row takes from its record (all but the item's and the row's own).
RECORD_COLUMNS = (
    "tier",
    "deployment",
    "provider",
    "model",
    *USAGE_KEYS,
    "cost_usd",
    "prices",
    "latency_ms",
    "queued_ms",
    "outcome",
    "verdicts",
    "error_class",
    "error_message",
    "output",
    "request_id",
    "cache_hit",
    "provider_batch_id",
    "saved_usd",
)


def attempt_row(
    item_id: int, batch_id: str, record: AttemptRecord, now: Any, claim_no: int | None = None
) -> dict[str, Any]:
    """An attempts row. `claim_no`: the claim that makes the call; kept from the row's first
    write (the intent), since upserts change RECORD_COLUMNS only (ledger/superseded.py)."""
    row = {name: getattr(record, name) for name in RECORD_COLUMNS}
    row.update(
        item_id=item_id,
        batch_id=batch_id,
        attempt_no=record.attempt_no,
        created_at=now,
        claim_no=claim_no,
    )
    return row


def upsert_attempts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert attempt rows; a row the journal already wrote (same item and attempt number) is
    overwritten with these values, so a call is never recorded twice."""
    upsert(session, Attempt, ("item_id", "attempt_no"), RECORD_COLUMNS, rows)


@dataclass(frozen=True)
class Intent:
    """A call about to be made for a claimed item: its row, at its estimated cost."""

    item_id: int
    batch_id: str
    tier: str
    claim_no: int
    record: AttemptRecord  # outcome in_flight, cost_usd the estimate


def write_intents(session: Session, intents: Sequence[Intent]) -> set[tuple[int, int]]:
    """Write the intents whose item is still held by the same claim; return the
    (item id, attempt number) pairs written. The item rows are locked until the commit
    (PostgreSQL; SQLite has one writer at a time), so a claim taken over in the meantime
    either sees these rows or refuses them."""
    if not intents:
        return set()
    held = {(r.id, r.tier, r.claims) for r in lock_held(session, (i.item_id for i in intents))}
    now = utcnow()
    accepted = [i for i in intents if (i.item_id, i.tier, i.claim_no) in held]
    upsert_attempts(
        session,
        [attempt_row(i.item_id, i.batch_id, i.record, now, i.claim_no) for i in accepted],
    )
    return {(i.item_id, i.record.attempt_no) for i in accepted}


def write_finals(session: Session, finals: Sequence[tuple[int, AttemptRecord]]) -> int:
    """Complete in-flight rows with their calls' outcomes; return how many changed. A row that
    is no longer in flight (the chunk's outcome got there first, or a later claim declared it
    lost) is left alone."""
    if not finals:
        return 0
    attempts = cast(Table, Attempt.__table__)
    result = session.execute(
        update(attempts)
        .where(
            attempts.c.item_id == bindparam("f_item"),
            attempts.c.attempt_no == bindparam("f_no"),
            attempts.c.outcome == IN_FLIGHT,
        )
        .values({name: bindparam(f"f_{name}") for name in RECORD_COLUMNS}),
        [
            {"f_item": item_id, "f_no": record.attempt_no}
            | {f"f_{name}": getattr(record, name) for name in RECORD_COLUMNS}
            for item_id, record in finals
        ],
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def take_over_dead_rounds(
    session: Session, items: Sequence[ClaimedItem]
) -> dict[int, list[AttemptRecord]]:
    """For items claimed again, the calls of the round their last claim left unfinished.

    Those are the rows past the item's recorded attempt count. Rows still in flight are turned
    into `lost_in_flight` errors at their estimated cost; the rest come back as records for the
    new round to continue from. Run it in the claim's transaction.
    """
    again = [item.id for item in items if item.claim_no > 1]
    if not again:
        return {}
    past_recorded = and_(
        Attempt.item_id.in_(again),
        Attempt.item_id == Item.id,
        Attempt.attempt_no > Item.attempts,
    )
    lost_ids = list(
        session.scalars(
            select(Attempt.id)
            .where(past_recorded, Attempt.outcome == IN_FLIGHT)
            .order_by(Attempt.id)
        )
    )
    if lost_ids:
        session.execute(
            update(Attempt)
            .where(Attempt.id.in_(lost_ids))
            .values(
                outcome="error",
                error_class=LOST_CLASS,
                error_message=LOST_MESSAGE,
                usage_estimated=True,
            )
        )
    dead: dict[int, list[AttemptRecord]] = {}
    for row in session.scalars(
        select(Attempt).where(past_recorded).order_by(Attempt.item_id, Attempt.attempt_no)
    ):
        dead.setdefault(row.item_id, []).append(record_of(row))
    return dead


def record_of(row: Attempt) -> AttemptRecord:
    fields = {name: getattr(row, name) for name in RECORD_COLUMNS}
    fields["prices"] = dict(row.prices or {})
    fields["verdicts"] = list(row.verdicts or [])
    # An AttemptRecord is the worker's: money in floats (exact again when written back).
    fields["cost_usd"], fields["saved_usd"] = float(row.cost_usd), float(row.saved_usd)
    return AttemptRecord(attempt_no=row.attempt_no, **fields)
