"""Calls of a claim that was taken over: paid for, answers not used, kept in the ledger.

A worker cut off from the ledger (its host partitioned) keeps calling what it had started:
the provider answers, and bills, calls whose item another worker has meanwhile taken over
(its lease lapsed: ledger/leases.py). The takeover claim turned the calls' intent rows into
`lost_in_flight` errors at their estimated cost (ledger/journal.py) and counted them in the
item. When the cut-off worker comes back it writes what it knows of those calls here, instead
of having its late outcome refused wholesale: each such row gets the call's real usage and
cost, and the outcome `superseded` ("paid, answer not used"). So the ledger's calls and spend
match the provider's count and invoice after a partition too.

- Only the worker's own rows change (attempts.claim_no, its intent's claim), and only while
  `lost_in_flight`: a row some round completed (a verdict, an error) is the truth and stays;
  a row still `in_flight` (no claim took the item since) takes the call's outcome as usual
  (journal.write_finals), and the next claim uses it without calling again.
- A call the worker knows it never sent (its intent was refused once the ledger answered
  again: the first try may have committed without the worker hearing so) becomes a
  superseded row of cost 0, error class `not_sent`.
- The item's cost follows: if a recorded round already counted the row (at its estimate),
  the difference is added; if the round that adopted it has not recorded yet, that round
  reads the row back when it records (`refresh_adopted`), so it counts the real cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from ledger.journal import IN_FLIGHT, LOST_CLASS, RECORD_COLUMNS, record_of, write_finals
from ledger.models import Attempt, Item
from ledger.money import ZERO, money
from ledger.outcomes import AttemptRecord, ItemOutcome

SUPERSEDED = "superseded"  # attempts.outcome: the call was paid, its claim taken over
NOT_SENT = "not_sent"  # attempts.error_class: a superseded intent whose call was never made
NOT_SENT_MESSAGE = "the item's claim was taken over before the call was sent: not billed"
SUPERSEDED_MESSAGE = "the item's claim was taken over during the call: paid, answer not used"


def not_sent(record: AttemptRecord) -> AttemptRecord:
    """The record of a call whose intent was refused: it was never made and costs nothing."""
    return AttemptRecord(
        attempt_no=record.attempt_no,
        tier=record.tier,
        deployment=record.deployment,
        provider=record.provider,
        model=record.model,
        outcome="error",
        error_class=NOT_SENT,
        error_message=NOT_SENT_MESSAGE,
        prices=record.prices,
    )


def is_lost(record: AttemptRecord) -> bool:
    return record.outcome == "error" and record.error_class == LOST_CLASS


def write_superseded(session: Session, calls: Sequence[tuple[int, int, AttemptRecord]]) -> int:
    """Write what a claim that is no longer current learnt of its calls: (item id, claim
    number, record) each. A row the takeover declared lost becomes superseded; a row still in
    flight (no claim has taken the item since) takes the call's outcome, for the next claim to
    use. Only the claim's own rows change (attempts.claim_no). Records that carry no knowledge
    of their own (a lost call adopted from an earlier dead round, a cache hit) are skipped.
    Return how many rows changed. Locks the items first, as every item write does."""
    known = [(i, c, r) for i, c, r in calls if not is_lost(r) and not r.cache_hit]
    if not known:
        return 0
    ids = sorted({item_id for item_id, _, _ in known})
    counted = dict(
        session.execute(
            select(Item.id, Item.attempts)
            .where(Item.id.in_(ids))
            .order_by(Item.id)
            .with_for_update()
        ).all()
    )
    open_rows = {
        (row.item_id, row.attempt_no): row
        for row in session.execute(
            select(
                Attempt.item_id, Attempt.attempt_no, Attempt.cost_usd, Attempt.outcome,
                Attempt.claim_no,
            ).where(
                Attempt.item_id.in_(ids),
                or_(Attempt.outcome == IN_FLIGHT, Attempt.error_class == LOST_CLASS),
            )
        )
    }  # fmt: skip
    finals: list[tuple[int, AttemptRecord]] = []
    changes: list[tuple[int, AttemptRecord, Decimal]] = []
    for item_id, claim_no, record in known:
        row = open_rows.get((item_id, record.attempt_no))
        if row is None or row.claim_no != claim_no:
            continue  # completed by a round, or another claim's call: the row stands
        if row.outcome == IN_FLIGHT:
            finals.append((item_id, record))
        else:
            changes.append((item_id, record, money(row.cost_usd)))
    written = write_finals(session, finals)
    if not changes:
        return written
    attempts = cast(Table, Attempt.__table__)
    session.execute(
        update(attempts)
        .where(
            attempts.c.item_id == bindparam("s_item"),
            attempts.c.attempt_no == bindparam("s_no"),
            attempts.c.error_class == LOST_CLASS,
        )
        .values({name: bindparam(f"s_{name}") for name in RECORD_COLUMNS}),
        [_superseded_row(item_id, record) for item_id, record, _ in changes],
    )
    # Rows a recorded round counted in its item at their estimate: the item's cost follows.
    deltas: dict[int, Decimal] = {}  # exact: the worker's float cost, the ledger's NUMERIC
    for item_id, record, estimate in changes:
        if record.attempt_no <= counted.get(item_id, 0):
            deltas[item_id] = deltas.get(item_id, ZERO) + money(record.cost_usd) - estimate
    if deltas:
        items = cast(Table, Item.__table__)
        session.execute(
            update(items)
            .where(items.c.id == bindparam("d_id"))
            .values(cost_usd=items.c.cost_usd + bindparam("d_delta")),
            [{"d_id": item_id, "d_delta": delta} for item_id, delta in deltas.items()],
        )
    return written + len(changes)


def _superseded_row(item_id: int, record: AttemptRecord) -> dict[str, Any]:
    values = {f"s_{name}": getattr(record, name) for name in RECORD_COLUMNS}
    values.update(
        s_item=item_id,
        s_no=record.attempt_no,
        s_outcome=SUPERSEDED,
        s_error_message=record.error_message or SUPERSEDED_MESSAGE,
    )
    return values


def refresh_adopted(session: Session, outcomes: Sequence[ItemOutcome]) -> None:
    """Before a round records: its records of lost calls it adopted from a dead round are
    replaced by their rows when the cut-off worker has written those meanwhile (superseded,
    real cost), so the item counts what the ledger says. Free when no round adopted any."""
    adopted = {(o.item_id, r.attempt_no) for o in outcomes for r in o.attempts if is_lost(r)}
    if not adopted:
        return
    rows = {
        (row.item_id, row.attempt_no): row
        for row in session.scalars(
            select(Attempt).where(
                Attempt.item_id.in_(sorted({item_id for item_id, _ in adopted})),
                Attempt.outcome == SUPERSEDED,
            )
        )
    }
    for outcome in outcomes:
        outcome.attempts = [
            record_of(rows[(outcome.item_id, r.attempt_no)])
            if is_lost(r) and (outcome.item_id, r.attempt_no) in rows
            else r
            for r in outcome.attempts
        ]
