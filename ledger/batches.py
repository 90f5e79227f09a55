"""Register batches and their items, and read a batch's progress."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from ledger.errors import SHOWN_CANDIDATES, DuplicateBatchName, ambiguous
from ledger.errors import AmbiguousBatch as AmbiguousBatch  # defined light, re-exported
from ledger.errors import UnknownBatch as UnknownBatch  # defined light (the CLI), re-exported
from ledger.models import (
    TERMINAL_STATES,
    Attempt,
    Batch,
    BudgetReservation,
    Item,
    ItemState,
    utcnow,
)
from ledger.money import money
from ledger.money_sql import money_sum
from ledger.status import BatchStatus as BatchStatus  # defined light (status), re-exported
from ledger.status import shown_state

if TYPE_CHECKING:  # routing.types costs ~70 ms to import; `status` does not need it
    from routing.types import InputItem

INSERT_CHUNK = 2000  # rows per INSERT statement: big enough to be fast, small enough for SQLite


def new_batch_id() -> str:
    return uuid.uuid4().hex


def register_batch(
    session: Session,
    *,
    items: Sequence[InputItem],
    task_type: str,
    entry_tier: str,
    config_yaml: str,
    config_source: str,
    name: str | None = None,
    project: str | None = None,
    callback_url: str | None = None,
    callback_task: str | None = None,
    budget_usd: float | None = None,
    dedupe: bool = False,
    entry_tiers: Sequence[str] | None = None,
) -> tuple[str, list[int]]:
    """Insert the batch and all its items as queued on the entry tier; return the ids to
    publish (in input order).

    With `dedupe` (the task caches), an item whose text and fields equal an earlier item's is
    a follower: `waiting`, `duplicate_of` its leader, not returned (never published), and
    settled when its leader is (ledger/dedup.py). `entry_tiers` (one per item, from a fitted
    router) starts items on other rungs than `entry_tier`.
    """
    if dedupe:
        from ledger.dedup import find_leaders

        leader_of, followers = find_leaders(items)
    else:
        leader_of, followers = [None] * len(items), [0] * len(items)
    refuse_duplicate_name(session, name)
    batch_id = new_batch_id()
    session.add(
        Batch(
            id=batch_id,
            name=name,
            task_type=task_type,
            project=project,
            config_yaml=config_yaml,
            config_source=config_source,
            total=len(items),
            done=0,
            callback_url=callback_url,
            callback_task=callback_task,
            budget_usd=budget_usd,
        )
    )
    session.flush()
    for start in range(0, len(items), INSERT_CHUNK):
        rows = [
            {
                "batch_id": batch_id,
                "external_id": item.external_id,
                "line_no": item.line_no,
                "text": item.text,
                "expected": item.expected,
                "fields": item.fields,
                "state": ItemState.QUEUED.value
                if leader_of[index] is None
                else ItemState.WAITING.value,
                "tier": entry_tiers[index] if entry_tiers else entry_tier,
                "attempts": 0,
                "cost_usd": 0,
                "duplicates": followers[index],
            }
            for index, item in enumerate(items[start : start + INSERT_CHUNK], start)
        ]
        session.execute(insert(Item), rows)
    item_ids = list(
        session.scalars(select(Item.id).where(Item.batch_id == batch_id).order_by(Item.id))
    )
    links = [
        {"d_id": item_ids[index], "d_leader": item_ids[leader]}
        for index, leader in enumerate(leader_of)
        if leader is not None
    ]
    if not links:
        return batch_id, item_ids
    table = cast(Table, Item.__table__)  # ids are known only now: one executemany
    session.execute(
        update(table)
        .where(table.c.id == bindparam("d_id"))
        .values(duplicate_of=bindparam("d_leader")),
        links,
    )
    return batch_id, [
        item_id for item_id, leader in zip(item_ids, leader_of, strict=True) if leader is None
    ]


def refresh_item_statistics(session: Session) -> None:
    """Have PostgreSQL sample the items table again, once a batch's rows are in.

    Autovacuum re-analyzes a table a minute or more after a tenth of it changed; until then
    the planner sees the table as it was. A fresh batch of 40,000 items, planned as one row,
    made every chunk's claim (ledger/transitions.py) walk the batch's entries in
    ix_items_batch_state_tier and filter them by id: 12 ms a claim, growing with the batch,
    and twice the PostgreSQL CPU per item. ANALYZE reads a fixed sample (a fraction of a
    second at millions of rows) and blocks no reader or writer. SQLite plans without it.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE items"))


def find_batch(session: Session, batch_ref: str) -> Batch:
    """A batch by id, unique id prefix, or name. A prefix or name that matches several
    batches is refused with the list of them (AmbiguousBatch), never resolved silently."""
    batch = session.get(Batch, batch_ref)
    if batch is not None:
        return batch
    newest_first = (Batch.created_at.desc(), Batch.id)
    limit = SHOWN_CANDIDATES + 1
    escaped = batch_ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    by_prefix = list(
        session.scalars(
            select(Batch)
            .where(Batch.id.like(f"{escaped}%", escape="\\"))
            .order_by(*newest_first)
            .limit(limit)
        )
    )
    if len(by_prefix) == 1:
        return by_prefix[0]
    by_name = list(
        session.scalars(
            select(Batch).where(Batch.name == batch_ref).order_by(*newest_first).limit(limit)
        )
    )
    if len(by_name) == 1:
        return by_name[0]
    for kind, found in (("name", by_name), ("id prefix", by_prefix)):
        if found:
            rows = [(b.id, b.name, b.created_at, b.total) for b in found]
            raise ambiguous(batch_ref, kind, rows)
    raise UnknownBatch(f"no batch {batch_ref!r} in the ledger")


def refuse_duplicate_name(session: Session, name: str | None) -> None:
    """A new batch may not take a name another batch has (DuplicateBatchName)."""
    if name is None:
        return
    taken = session.execute(
        select(Batch.id, Batch.created_at).where(Batch.name == name).limit(1)
    ).first()
    if taken is not None:
        raise DuplicateBatchName(
            f"a batch named {name!r} already exists ({taken[0]}, created "
            f"{str(taken[1])[:16]}): `results {name}` and `status {name}` must find one batch; "
            "choose another --name (a date or a run number), or leave it out"
        )


def batch_status(session: Session, batch_ref: str) -> BatchStatus:
    batch = find_batch(session, batch_ref)
    # Served by ix_items_batch_state_tier alone (PostgreSQL: an index-only scan), not by
    # reading each of the batch's rows.
    rows = session.execute(
        select(Item.tier, Item.state, func.count())
        .where(Item.batch_id == batch.id)
        .group_by(Item.state, Item.tier)
    ).all()
    by_tier_state = {(tier, state): count for tier, state, count in rows}
    by_state: dict[str, int] = {}
    for (_, state), count in by_tier_state.items():
        by_state[state] = by_state.get(state, 0) + count
    done = sum(by_state.get(state, 0) for state in TERMINAL_STATES)
    # Workers track spend call by call only for batches a budget of their own limits; for the
    # others the attempts are the figure (as ledger.budgets.recorded_spend).
    spent: Decimal | None = batch.spent_usd
    if batch.budget_usd is None:
        spent = session.scalar(
            select(money_sum(Attempt.cost_usd)).where(Attempt.batch_id == batch.id)
        )
    return BatchStatus(
        batch_id=batch.id,
        name=batch.name,
        task_type=batch.task_type,
        total=batch.total,
        done=done,
        finished=done >= batch.total,
        state=shown_state(batch.state, done >= batch.total),
        paused_reason=batch.paused_reason,
        by_state=by_state,
        by_tier_state=by_tier_state,
        budget_usd=batch.budget_usd,
        spent_usd=money(spent),
        reserved_usd=live_reserved(session, batch_id=batch.id),
    )


def chunked(ids: Iterable[int], size: int) -> list[list[int]]:
    ids = list(ids)
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def live_reserved(
    session: Session, *, batch_id: str | None = None, project: str | None = None
) -> Decimal:
    """What calls in flight hold now: the reservations whose lease has not ended."""
    scope = (
        BudgetReservation.batch_id == batch_id
        if batch_id is not None
        else BudgetReservation.project == project
    )
    total = session.scalar(
        select(money_sum(BudgetReservation.amount_usd)).where(
            scope, BudgetReservation.expires_at >= utcnow()
        )
    )
    return money(total)
