"""In-batch duplicates: items of one batch asking the same thing are called once.

At submit, the first item with a given text and fields is the leader; later equal items are
followers: state `waiting`, `duplicate_of` = the leader, and never published. When the leader
settles (succeeded, failed, or failed as poisoned), its waiting followers settle in the same
transaction with its state and output, each with one attempt row marked `cache_hit` (cost 0,
`saved_usd` = what the leader cost), so reports count what deduplication saved. A leader that
escalates leaves its followers waiting; a cancelled batch cancels them with its queued items.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session, aliased

from ledger.models import Attempt, Item, ItemState
from ledger.money import ZERO, money

if TYPE_CHECKING:
    from ledger.outcomes import AttemptRecord
    from routing.types import InputItem


def duplicate_key(text: str, fields: dict[str, Any] | None) -> tuple[str, str]:
    """Items with equal keys send the same request (the prompt is rendered from these)."""
    return text, json.dumps(fields or {}, sort_keys=True, separators=(",", ":"), default=str)


def find_leaders(items: Sequence[InputItem]) -> tuple[list[int | None], list[int]]:
    """For each item: the position of its leader (None for a leader or a unique item), and
    for each item how many followers it leads. Pure Python: register_batch stays one pass."""
    first: dict[tuple[str, str], int] = {}
    leader_of: list[int | None] = []
    followers = [0] * len(items)
    for index, item in enumerate(items):
        position = first.setdefault(duplicate_key(item.text, item.fields), index)
        if position == index:
            leader_of.append(None)
        else:
            leader_of.append(position)
            followers[position] += 1
    return leader_of, followers


@dataclass(frozen=True)
class LeaderEnd:
    """How a leader settled: its followers copy this."""

    item_id: int
    state: str  # succeeded | failed
    output: str | None
    deployment: str | None
    model: str | None
    tier: str
    error: str | None
    last: AttemptRecord | None  # the leader's judged call of its final round, if it made one


def settle_followers(session: Session, leaders: Sequence[LeaderEnd], now: Any) -> Counter[str]:
    """Settle the waiting followers of these leaders; return settled followers per batch.

    Three statements whatever the number of followers: select them (locked), update them in
    one executemany, insert their attempt rows. Only followers still `waiting` move, so a
    cancel that got there first wins and nothing is settled twice. On SQLite, which has no row
    locks, the caller's write transaction (BEGIN IMMEDIATE, ledger/db.py) excludes the cancel.
    """
    by_id = {leader.item_id: leader for leader in leaders}
    if not by_id:
        return Counter()
    leader_row = aliased(Item)
    rows = session.execute(
        select(Item.id, Item.batch_id, Item.retry_base, Item.duplicate_of, leader_row.cost_usd)
        .join(leader_row, leader_row.id == Item.duplicate_of)
        .where(Item.duplicate_of.in_(sorted(by_id)), Item.state == ItemState.WAITING.value)
        .order_by(Item.id)
        .with_for_update(of=Item)
    ).all()
    if not rows:
        return Counter()
    items = cast(Table, Item.__table__)
    params = []
    attempt_rows = []
    for row in rows:
        leader = by_id[row.duplicate_of]
        last = leader.last
        params.append(
            {
                "f_id": row.id,
                "f_state": leader.state,
                "f_tier": leader.tier,
                "f_output": leader.output,
                "f_deployment": leader.deployment,
                "f_model": leader.model,
                "f_error": leader.error,
                "f_calls": 1 if last is not None else 0,
            }
        )
        if last is not None:
            saved = money(row.cost_usd) + (money(last.saved_usd) if last.cache_hit else ZERO)
            attempt_rows.append(_follower_attempt(row, leader, last, saved, now))
    session.execute(
        update(items)
        .where(items.c.id == bindparam("f_id"))
        .values(
            state=bindparam("f_state"),
            tier=bindparam("f_tier"),
            output=bindparam("f_output"),
            deployment=bindparam("f_deployment"),
            model=bindparam("f_model"),
            error=bindparam("f_error"),
            attempts=items.c.attempts + bindparam("f_calls"),
            updated_at=now,
        ),
        params,
    )
    if attempt_rows:
        session.execute(insert(Attempt), attempt_rows)
    return Counter(row.batch_id for row in rows)


def _follower_attempt(
    row: Any, leader: LeaderEnd, last: AttemptRecord, saved: Decimal, now: Any
) -> dict[str, Any]:
    if leader.state == ItemState.SUCCEEDED.value:
        outcome = "passed"
    else:
        outcome = last.outcome if last.outcome in ("check_failed", "error") else "error"
    return {
        "item_id": row.id,
        "batch_id": row.batch_id,
        "attempt_no": row.retry_base + 1,
        "tier": leader.tier,
        "deployment": last.deployment,
        "provider": last.provider,
        "model": last.model,
        "input_tokens": last.input_tokens,
        "cached_input_tokens": last.cached_input_tokens,
        "cache_write_tokens": last.cache_write_tokens,
        "output_tokens": last.output_tokens,
        "reasoning_tokens": last.reasoning_tokens,
        "usage_estimated": last.usage_estimated,
        "cost_usd": 0.0,
        "prices": last.prices,
        "latency_ms": 0.0,
        "outcome": outcome,
        "verdicts": last.verdicts,
        "error_class": last.error_class,
        "error_message": last.error_message,
        "output": leader.output,
        "request_id": None,
        "cache_hit": True,
        "provider_batch_id": None,
        "saved_usd": saved,
        "created_at": now,
    }


def last_judged(records: Sequence[AttemptRecord]) -> AttemptRecord | None:
    """The leader's final call of its round (a consensus sample is not the answer)."""
    for record in reversed(records):
        if record.outcome != "sample":
            return record
    return None
