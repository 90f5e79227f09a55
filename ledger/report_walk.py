"""The premium-only baseline's SQL: each item's walk up its ladder, in one ordered pass.

Split from report_queries.py: the escalation funnel and the tokens one premium call per item
would have used both come from where an item arrives on, and leaves, each tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, case, func, select
from sqlalchemy.orm import Session

from ledger.models import Attempt, Item
from ledger.money import money
from ledger.money_sql import money_sum
from ledger.report_queries import FAILED, ReportFilter, attempt_conditions


@dataclass
class WalkRow:
    """One (tier, batch): the funnel figures of that tier and the premium-only token sums."""

    tier: str
    batch_id: str
    attempts: int
    cost_usd: Decimal
    received: int  # items that arrived on the tier (their first attempt there)
    resolved: int  # ... and passed there
    escalated: int  # ... and moved on to another tier
    failed: int  # ... and ended failed there
    first_input_tokens: int  # items whose first attempt (in scope) was here: their prompt
    last_output_tokens: int  # ... and their final answer


def ladder_walk(session: Session, f: ReportFilter) -> list[WalkRow]:
    """Each item's path up the ladder, in one ordered pass over its attempts.

    lag/lead over (item_id, attempt_no) - the order of the unique index - mark the attempt where
    an item arrives on a tier and the one where it leaves: arrivals count the funnel. An item
    is resolved on the tier where it has a passed attempt, wherever that attempt stands (a
    consensus check's samples come after the judged call). Only an item's last attempt needs
    the items row (failed there, or queued on a tier it has not reached yet).

    Premium-only prices each item once, on its first row: its prompt is the input of its first
    attempt that has any (a first call that failed unbilled recorded 0 tokens, and a premium
    call would still have read the prompt), its answer the output of its last judged attempt
    (not a consensus sample). Cache hits stay in this walk, unlike in the token totals: their
    rows carry the usage of the call that earned the answer, so an item answered from the
    cache prices the same prompt and answer as on the run that paid for it.
    """
    walk = walk_rows(f)
    last = walk.c.next_tier.is_(None)
    arrives = (walk.c.prev_tier.is_(None)) | (walk.c.prev_tier != walk.c.tier)

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            walk.c.tier,
            walk.c.batch_id,
            func.count(),
            money_sum(walk.c.cost),
            count(arrives),
            count(walk.c.outcome == "passed"),
            count(
                and_(~last, walk.c.next_tier != walk.c.tier) | and_(last, Item.tier != walk.c.tier)
            ),
            count(and_(last, Item.tier == walk.c.tier, Item.state == FAILED)),
            func.coalesce(
                func.sum(case((walk.c.prev_tier.is_(None), walk.c.prompt_tokens), else_=0)), 0
            ),
            func.coalesce(
                func.sum(case((walk.c.prev_tier.is_(None), walk.c.answer_tokens), else_=0)), 0
            ),
        )
        .select_from(walk)
        .outerjoin(Item, and_(Item.id == walk.c.item_id, last))
        .group_by(walk.c.tier, walk.c.batch_id)
    ).all()
    return [
        WalkRow(t, b, int(n), money(c), int(r), int(ok), int(e), int(x), int(i), int(o))
        for t, b, n, c, r, ok, e, x, i, o in rows
    ]


def walk_rows(f: ReportFilter) -> Subquery:
    """Every attempt in scope with its neighbours' tiers and its item's prompt and answer
    tokens (see ladder_walk): one ordered pass over the attempts, by (item_id, attempt_no)."""
    return (
        select(
            Attempt.item_id.label("item_id"),
            Attempt.batch_id.label("batch_id"),
            Attempt.tier.label("tier"),
            Attempt.outcome.label("outcome"),
            Attempt.cost_usd.label("cost"),
            Attempt.input_tokens.label("input_tokens"),
            Attempt.output_tokens.label("output_tokens"),
            func.lag(Attempt.tier)
            .over(partition_by=Attempt.item_id, order_by=Attempt.attempt_no)
            .label("prev_tier"),
            func.lead(Attempt.tier)
            .over(partition_by=Attempt.item_id, order_by=Attempt.attempt_no)
            .label("next_tier"),
            func.first_value(Attempt.input_tokens)
            .over(
                partition_by=Attempt.item_id,
                order_by=(case((Attempt.input_tokens > 0, 0), else_=1), Attempt.attempt_no),
            )
            .label("prompt_tokens"),
            func.first_value(Attempt.output_tokens)
            .over(
                partition_by=Attempt.item_id,
                order_by=(
                    case((Attempt.outcome == "sample", 1), else_=0),
                    Attempt.attempt_no.desc(),
                ),
            )
            .label("answer_tokens"),
        )
        # An audit call (routing/audit.py) is no step of the item's route up the ladder.
        .where(*attempt_conditions(f), Attempt.outcome != "audit")
        .subquery()
    )


def funnel(walk: list[WalkRow]) -> dict[str, dict[str, Any]]:
    """Per tier: items received, attempts, cost, resolved, passed on, failed."""
    out: dict[str, dict[str, Any]] = {}
    for row in walk:
        line = out.setdefault(
            row.tier,
            dict.fromkeys(
                ("received", "attempts", "cost_usd", "resolved", "failed", "escalated"), 0
            ),
        )
        line["received"] += row.received
        line["attempts"] += row.attempts
        line["cost_usd"] += row.cost_usd
        line["resolved"] += row.resolved
        line["failed"] += row.failed
        line["escalated"] += row.escalated
    return out


@dataclass
class PremiumTokens:
    batch_id: str
    first_input_tokens: int  # each item's prompt: what a premium call would read
    last_output_tokens: int  # each item's final answer: what a premium call would write


def premium_tokens(walk: list[WalkRow]) -> list[PremiumTokens]:
    """Per batch, the tokens one premium call per item would have used (priced by the caller)."""
    per: dict[str, PremiumTokens] = {}
    for row in walk:
        tokens = per.setdefault(row.batch_id, PremiumTokens(row.batch_id, 0, 0))
        tokens.first_input_tokens += row.first_input_tokens
        tokens.last_output_tokens += row.last_output_tokens
    return list(per.values())


def item_premium_tokens(
    session: Session, f: ReportFilter, batch_ids: list[str]
) -> list[tuple[str, str, int, int]]:
    """(batch id, item external id, prompt tokens, answer tokens) of each item in scope of
    these batches: for pricing premium-only item by item (report_replay.py)."""
    walk = walk_rows(f)
    return [
        (b, x, int(i), int(o))
        for b, x, i, o in session.execute(
            select(walk.c.batch_id, Item.external_id, walk.c.prompt_tokens, walk.c.answer_tokens)
            .join(Item, Item.id == walk.c.item_id)
            .where(walk.c.prev_tier.is_(None), walk.c.batch_id.in_(batch_ids))
        ).all()
    ]
