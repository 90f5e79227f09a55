"""The cost report of a batch, aggregated in SQL: by tier, by model, and against premium-only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import and_, case, distinct, func, select
from sqlalchemy.orm import Session

from batchrouter.ledger.batches import find_batch
from batchrouter.ledger.models import Attempt, Item, ItemState
from batchrouter.routing.config import parse_config


@dataclass
class TierLine:
    tier: str
    items_received: int
    attempts: int
    cost_usd: float
    resolved: int  # items that succeeded on this tier
    escalated: int  # items passed on to the next tier
    failed: int  # items that ended failed on this tier


@dataclass
class ModelLine:
    tier: str
    deployment: str
    model: str
    attempts: int
    passed: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass
class BatchReport:
    batch_id: str
    name: str | None
    task_type: str
    items: int
    succeeded: int
    failed: int
    pending: int
    attempts: int
    cost_usd: float
    premium_tier: str
    premium_only_cost_usd: float
    saving_usd: float
    saving_pct: float
    by_tier: list[TierLine] = field(default_factory=list)
    by_model: list[ModelLine] = field(default_factory=list)
    with_expected: int = 0  # items whose producer gave an expected answer
    correct: int = 0  # of those, items whose final output equals it
    simulated: bool = False  # the offline sim provider produced these numbers
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def build_report(session: Session, batch_ref: str) -> BatchReport:
    batch = find_batch(session, batch_ref)
    config = parse_config(batch.config_yaml, batch.config_source)
    task = config.task_type(batch.task_type)
    of_batch = Attempt.batch_id == batch.id

    states = dict(
        session.execute(
            select(Item.state, func.count()).where(Item.batch_id == batch.id).group_by(Item.state)
        ).all()
    )
    settled = {
        f"{tier}|{state}": count
        for tier, state, count in session.execute(
            select(Item.tier, Item.state, func.count())
            .where(Item.batch_id == batch.id)
            .group_by(Item.tier, Item.state)
        ).all()
    }
    tier_rows = session.execute(
        select(
            Attempt.tier,
            func.count(distinct(Attempt.item_id)),
            func.count(),
            func.coalesce(func.sum(Attempt.cost_usd), 0.0),
        )
        .where(of_batch)
        .group_by(Attempt.tier)
    ).all()
    received = {tier: (items, attempts, cost) for tier, items, attempts, cost in tier_rows}
    by_tier = []
    for tier in task.ladder:
        items, attempts, cost = received.get(tier, (0, 0, 0.0))
        resolved = settled.get(f"{tier}|{ItemState.SUCCEEDED.value}", 0)
        failed = settled.get(f"{tier}|{ItemState.FAILED.value}", 0)
        waiting = settled.get(f"{tier}|{ItemState.QUEUED.value}", 0) + settled.get(
            f"{tier}|{ItemState.RUNNING.value}", 0
        )
        escalated = max(items - resolved - failed - waiting, 0)
        by_tier.append(TierLine(tier, items, attempts, float(cost), resolved, escalated, failed))

    model_rows = session.execute(
        select(
            Attempt.tier,
            Attempt.deployment,
            Attempt.model,
            func.count(),
            func.sum(case((Attempt.outcome == "passed", 1), else_=0)),
            func.coalesce(func.sum(Attempt.input_tokens), 0),
            func.coalesce(func.sum(Attempt.cached_input_tokens), 0),
            func.coalesce(func.sum(Attempt.output_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0.0),
        )
        .where(of_batch)
        .group_by(Attempt.tier, Attempt.deployment, Attempt.model)
        .order_by(Attempt.tier, Attempt.deployment)
    ).all()
    by_model = [
        ModelLine(t, d, m, int(n), int(p or 0), int(i), int(c), int(o), float(cost))
        for t, d, m, n, p, i, c, o, cost in model_rows
    ]

    total_attempts = sum(line.attempts for line in by_model)
    total_cost = sum(line.cost_usd for line in by_model)
    premium = task.ladder[-1]
    premium_prices = config.prices_for(config.tier(premium).deployments[0])
    input_tokens, output_tokens = _premium_only_tokens(session, batch.id)
    premium_cost = (
        input_tokens * premium_prices.input + output_tokens * premium_prices.output
    ) / 1_000_000
    saving = premium_cost - total_cost
    with_expected, correct = session.execute(
        select(
            func.count(Item.expected),
            func.sum(
                case((and_(Item.state == "succeeded", Item.output == Item.expected), 1), else_=0)
            ),
        ).where(Item.batch_id == batch.id)
    ).one()
    simulated = bool(
        session.scalar(select(func.count()).where(of_batch, Attempt.provider == "sim"))
    )
    notes = [
        f"premium-only cost: each item's prompt and final answer tokens priced at "
        f"{premium} ({config.tier(premium).deployments[0]}), one call per item",
    ]
    if simulated:
        notes.append("these figures come from the offline sim provider, not from a real model")
    return BatchReport(
        batch_id=batch.id,
        name=batch.name,
        task_type=batch.task_type,
        items=batch.total,
        succeeded=states.get(ItemState.SUCCEEDED.value, 0),
        failed=states.get(ItemState.FAILED.value, 0),
        pending=states.get(ItemState.QUEUED.value, 0) + states.get(ItemState.RUNNING.value, 0),
        attempts=total_attempts,
        cost_usd=total_cost,
        premium_tier=premium,
        premium_only_cost_usd=premium_cost,
        saving_usd=saving,
        saving_pct=(100.0 * saving / premium_cost) if premium_cost > 0 else 0.0,
        by_tier=by_tier,
        by_model=by_model,
        with_expected=int(with_expected or 0),
        correct=int(correct or 0),
        simulated=simulated,
        notes=notes,
    )


def _premium_only_tokens(session: Session, batch_id: str) -> tuple[int, int]:
    """Input tokens of each item's first attempt and output tokens of its last one, summed."""
    bounds = (
        select(
            Attempt.item_id,
            func.min(Attempt.attempt_no).label("first"),
            func.max(Attempt.attempt_no).label("last"),
        )
        .where(Attempt.batch_id == batch_id)
        .group_by(Attempt.item_id)
        .subquery()
    )
    first_input = session.scalar(
        select(func.coalesce(func.sum(Attempt.input_tokens), 0)).join(
            bounds, and_(Attempt.item_id == bounds.c.item_id, Attempt.attempt_no == bounds.c.first)
        )
    )
    last_output = session.scalar(
        select(func.coalesce(func.sum(Attempt.output_tokens), 0)).join(
            bounds, and_(Attempt.item_id == bounds.c.item_id, Attempt.attempt_no == bounds.c.last)
        )
    )
    return int(first_input or 0), int(last_output or 0)
