"""Budgets per batch and per project tag: reserve before a call, settle after it.

Every provider call first reserves its estimated cost (its prompt plus its whole output limit)
with one conditional UPDATE per scope:

    UPDATE batches SET reserved_usd = reserved_usd + :a
     WHERE id = :b AND (budget_usd IS NULL OR spent_usd + reserved_usd + :a <= budget_usd)

so two workers on two hosts cannot both take the last dollar (no check-then-increment race),
and after the call the reservation is settled to the real cost. Spend therefore passes a budget
only when a call costs more than its estimate. Both scopes change in one transaction: when the
project's budget refuses, the batch's reservation is taken back before the commit.

Each reservation is also a row with a lease (the call's timeouts plus a margin). A worker
killed between reserve and settle cannot leave its hold forever: once the lease is over, the
reconciler (or the next reservation refused for want of room) releases it, and its amount is
counted as spent, because the call may have reached the provider and been billed. A settle that
comes after its lease ended replaces that estimate with the real cost. `status` shows only the
holds whose lease is live.

A batch without a budget still reserves and settles, so `status` shows what it spent and a
budget set later starts from the truth. A project without a `project_budgets` row is
unlimited and untracked; setting its budget creates the row from its batches' figures.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session

from ledger.batches import find_batch
from ledger.models import Attempt, Batch, BatchState, BudgetReservation, ProjectBudget, utcnow
from ledger.money import ZERO, money
from ledger.money_sql import money_sum

# A batch paused by a budget says so in its paused_reason, which starts with this.
BUDGET_PAUSE_PREFIX = "budget of $"


def usd(value: Decimal | float) -> str:
    return f"${value:,.4f}" if abs(Decimal(value)) < 100 else f"${value:,.2f}"


def exhausted_reason(
    scope: str, name: str, budget: Decimal, spent: Decimal, reserved: Decimal = ZERO
) -> str:
    """`budget of $X for batch B exhausted (spent $Y)`: the batch's paused_reason; what the
    calls in flight hold is added when they hold anything."""
    held = f", {usd(reserved)} held by calls in flight" if reserved > 1e-12 else ""
    return f"budget of {usd(budget)} for {scope} {name} exhausted (spent {usd(spent)}{held})"


@dataclass(frozen=True)
class Reservation:
    ok: bool
    reason: str | None = None  # why not, when not ok
    # Refused only because of what calls in flight hold: the spend alone leaves room for this
    # call, so it may fit once they settle (their real cost is usually below their estimate).
    may_fit_later: bool = False
    id: str | None = None  # the reservation row, to settle


def reserve(
    session: Session, batch_id: str, amount: Decimal | float, lease_s: float = 600.0
) -> Reservation:
    """Reserve `amount` USD on the batch and on its project, or on neither, for `lease_s`
    seconds at most. A refusal first releases holds whose lease is over, then tries again."""
    amount = money(amount)  # the worker's estimate is a float
    taken = _reserve(session, batch_id, amount)
    if not taken.ok and release_expired(session):
        taken = _reserve(session, batch_id, amount)
    if not taken.ok:
        return taken
    project = taken.reason  # _reserve passes the charged project here
    reservation = BudgetReservation(
        id=uuid.uuid4().hex,
        batch_id=batch_id,
        project=project,
        amount_usd=amount,
        expires_at=utcnow() + timedelta(seconds=lease_s),
    )
    session.add(reservation)
    session.flush()
    return Reservation(ok=True, id=reservation.id)


def _reserve(session: Session, batch_id: str, amount: Decimal) -> Reservation:
    """The counters' part of `reserve`. When ok, `reason` carries the project charged."""
    row = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.budget_usd.is_(None)
            | (Batch.spent_usd + Batch.reserved_usd + amount <= Batch.budget_usd),
        )
        .values(reserved_usd=Batch.reserved_usd + amount)
        .returning(Batch.project)
    ).first()
    if row is None:
        batch = session.execute(
            select(Batch.budget_usd, Batch.spent_usd, Batch.reserved_usd).where(
                Batch.id == batch_id
            )
        ).first()
        if batch is None or batch.budget_usd is None:
            return Reservation(ok=True)  # a removed batch: nothing to hold against
        reason = exhausted_reason("batch", batch_id, batch.budget_usd, *batch[1:3])
        later = batch.spent_usd + amount <= batch.budget_usd
        return Reservation(ok=False, reason=reason, may_fit_later=later)
    project = row.project
    if project is None:
        return Reservation(ok=True)
    taken = session.execute(
        update(ProjectBudget)
        .where(
            ProjectBudget.project == project,
            ProjectBudget.budget_usd.is_(None)
            | (
                ProjectBudget.spent_usd + ProjectBudget.reserved_usd + amount
                <= ProjectBudget.budget_usd
            ),
        )
        .values(reserved_usd=ProjectBudget.reserved_usd + amount)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return Reservation(ok=True, reason=project)
    limit = session.execute(
        select(ProjectBudget.budget_usd, ProjectBudget.spent_usd, ProjectBudget.reserved_usd).where(
            ProjectBudget.project == project
        )
    ).first()
    if limit is None or limit.budget_usd is None:
        return Reservation(ok=True)  # no project budget: unlimited
    # The project refuses: give the batch's reservation back in this same transaction.
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(reserved_usd=_minus(Batch.reserved_usd, amount))
    )
    reason = exhausted_reason("project", project, limit.budget_usd, *limit[1:3])
    later = limit.spent_usd + amount <= limit.budget_usd
    return Reservation(ok=False, reason=reason, may_fit_later=later)


def settle(
    session: Session,
    batch_id: str,
    reserved: Decimal | float,
    actual: Decimal | float,
    reservation_id: str | None = None,
) -> None:
    """Turn a reservation into spend: release `reserved`, add `actual` (0 when the call was
    never made), on the batch and on its project. A reservation already released for its
    lease counted `reserved` as spent: only the difference to `actual` is added."""
    reserved, actual = money(reserved), money(actual)
    if reservation_id is not None:
        gone = session.execute(
            delete(BudgetReservation).where(BudgetReservation.id == reservation_id)
        )
        if gone.rowcount == 0:  # type: ignore[attr-defined]
            reserved, actual = ZERO, actual - reserved
    row = session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(
            reserved_usd=_minus(Batch.reserved_usd, reserved),
            spent_usd=Batch.spent_usd + actual,
        )
        .returning(Batch.project)
    ).first()
    if row is None or row.project is None:
        return
    session.execute(
        update(ProjectBudget)
        .where(ProjectBudget.project == row.project)
        .values(
            reserved_usd=_minus(ProjectBudget.reserved_usd, reserved),
            spent_usd=ProjectBudget.spent_usd + actual,
        )
    )


def release_expired(session: Session, now: datetime | None = None) -> int:
    """Release the holds whose lease is over (their worker died mid-call): each amount leaves
    `reserved` and is counted as spent, since the call may have been billed. Returns how many
    were released. Safe from any number of hosts: each row is deleted once."""
    now = now or utcnow()
    released = session.execute(
        delete(BudgetReservation)
        .where(BudgetReservation.expires_at < now)
        .returning(
            BudgetReservation.batch_id, BudgetReservation.project, BudgetReservation.amount_usd
        )
    ).all()
    for batch_id, project, amount in released:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(
                reserved_usd=_minus(Batch.reserved_usd, amount), spent_usd=Batch.spent_usd + amount
            )
        )
        if project is not None:
            session.execute(
                update(ProjectBudget)
                .where(ProjectBudget.project == project)
                .values(
                    reserved_usd=_minus(ProjectBudget.reserved_usd, amount),
                    spent_usd=ProjectBudget.spent_usd + amount,
                )
            )
    return len(released)


def _minus(column, amount: Decimal):  # type: ignore[no-untyped-def]
    """column - amount, never below 0 (a row created mid-call)."""
    return case((column - amount < 0, ZERO), else_=column - amount)


def budget_applies(session: Session, batch_id: str) -> bool:
    """Whether a budget limits this batch (its own, or its project's). Workers skip the ledger
    round trips of reserving and settling for batches no budget limits."""
    row = session.execute(
        select(Batch.budget_usd, ProjectBudget.budget_usd)
        .outerjoin(ProjectBudget, ProjectBudget.project == Batch.project)
        .where(Batch.id == batch_id)
    ).first()
    return row is not None and (row[0] is not None or row[1] is not None)


def recorded_spend(
    session: Session, *, batch_id: str | None = None, project: str | None = None
) -> Decimal:
    """What a batch (or a project's batches) spent so far: the tracked figure of batches a
    budget limited, the attempt rows of the others (calls of chunks still running excluded)."""
    batches = select(Batch.id).where(
        Batch.id == batch_id if batch_id is not None else Batch.project == project
    )
    untracked = session.scalar(
        select(money_sum(Attempt.cost_usd)).where(
            Attempt.batch_id.in_(batches.where(Batch.budget_usd.is_(None)))
        )
    )
    tracked = session.scalar(
        select(money_sum(Batch.spent_usd)).where(
            Batch.id.in_(batches.where(Batch.budget_usd.is_not(None)))
        )
    )
    return money(untracked) + money(tracked)


def set_batch_budget(session: Session, batch_ref: str, budget_usd: Decimal | float | None) -> Batch:
    """Set (None: remove) a batch's budget; return the batch as it is now. A batch that had no
    budget was not tracked call by call: its spend starts from its recorded attempts."""
    batch = find_batch(session, batch_ref)
    values: dict = {"budget_usd": budget_usd}
    if batch.budget_usd is None and budget_usd is not None:
        values["spent_usd"] = recorded_spend(session, batch_id=batch.id)
    session.execute(update(Batch).where(Batch.id == batch.id).values(**values))
    session.refresh(batch)
    return batch


def set_project_budget(
    session: Session, project: str, budget_usd: Decimal | float | None
) -> ProjectBudget:
    """Set (None: unlimited but tracked) a project's budget. A new row starts from what the
    project's batches have spent and hold reserved."""
    row = session.get(ProjectBudget, project)
    if row is None:
        reserved = session.scalar(
            select(money_sum(Batch.reserved_usd)).where(Batch.project == project)
        )
        row = ProjectBudget(
            project=project,
            budget_usd=None if budget_usd is None else money(budget_usd),
            spent_usd=recorded_spend(session, project=project),
            reserved_usd=money(reserved),
        )
        session.add(row)
        session.flush()
        return row
    values: dict = {"budget_usd": budget_usd}
    if row.budget_usd is None and budget_usd is not None:  # untracked until now
        values["spent_usd"] = recorded_spend(session, project=project)
    session.execute(update(ProjectBudget).where(ProjectBudget.project == project).values(**values))
    session.refresh(row)
    return row


def paused_for_budget(session: Session, scope: str, name: str) -> list[str]:
    """Ids of paused batches whose pause names this budget (`batch B` or `project P`)."""
    query = select(Batch.id).where(
        Batch.state == BatchState.PAUSED.value,
        Batch.paused_reason.like(f"{BUDGET_PAUSE_PREFIX}%for {scope} {name} exhausted%"),
    )
    if scope == "batch":
        query = query.where(Batch.id == name)
    else:
        query = query.where(Batch.project == name)
    return list(session.scalars(query))
