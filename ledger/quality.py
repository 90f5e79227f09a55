"""How good are the accepted answers? Per rung, the measured share of right answers, with a 95%
interval, from the items that carry `expected` and from the audit sample (routing/audit.py).

An accepted item counts once: against its expected answer when the producer gave one, else
against the audit rung's answer when it is in the audit sample. The audit rung is the
reference: its own accepted answers are counted right unless `expected` says otherwise, and the
report says so. The batch's estimate weighs each rung's share by the items it accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import Attempt, Batch, Item
from ledger.money import ZERO, money
from routing.audit import matches_expected, wilson_interval
from routing.config import parse_config


@dataclass
class RungQuality:
    tier: str
    accepted: int  # items that succeeded on this rung
    sampled: int  # of those, judged: by `expected`, else by the audit rung
    right: int
    share: float | None  # right / sampled
    low: float | None  # 95% Wilson interval
    high: float | None
    below_target: bool = False  # the whole interval is below the task type's quality_target
    reference: bool = False  # the audit rung: taken as right where nothing else judges it


@dataclass
class Quality:
    rungs: list[RungQuality] = field(default_factory=list)
    estimated_accuracy: float | None = None  # accepted items, weighted by rung
    quality_target: float | None = None
    audit_rate: float | None = None
    audit_tier: str | None = None
    audit_calls: int = 0
    audit_cost_usd: Decimal = ZERO
    flagged: list[str] = field(default_factory=list)  # rungs below the target


def batch_quality(session: Session, batch_id: str) -> Quality | None:
    """The batch's quality figures; None when nothing can judge them (no item has `expected`
    and the task type has no audit)."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        return None
    task = parse_config(batch.config_yaml, batch.config_source, resolve_code=False).task_type(
        batch.task_type
    )
    items = session.execute(
        select(Item.id, Item.tier, Item.output, Item.expected).where(
            Item.batch_id == batch_id, Item.state == "succeeded"
        )
    ).all()
    audits = session.execute(
        select(Attempt.item_id, Attempt.cost_usd, Attempt.error_class, Attempt.verdicts).where(
            Attempt.batch_id == batch_id, Attempt.outcome == "audit"
        )
    ).all()
    if task.audit is None and not any(expected is not None for *_, expected in items):
        return None
    verdict: dict[int, bool] = {}
    for item_id, _cost, error_class, verdicts in audits:
        if error_class is None and verdicts:
            verdict[item_id] = bool(verdicts[0].get("passed"))
    quality = Quality(
        quality_target=task.quality_target,
        audit_rate=task.audit.rate if task.audit else None,
        audit_tier=task.audit_tier,
        audit_calls=len(audits),
        audit_cost_usd=sum((money(cost) for _id, cost, *_ in audits), ZERO),
    )
    weighted = weight = 0.0
    for tier in task.tier_names:
        on_rung = [row for row in items if row[1] == tier]
        reference = tier == task.audit_tier
        judged = []
        for item_id, _tier, output, expected in on_rung:
            if expected is not None:
                judged.append(matches_expected(output, expected))
            elif item_id in verdict:
                judged.append(verdict[item_id])
            elif reference:
                judged.append(True)
        line = _line(tier, len(on_rung), judged, task.quality_target, reference)
        quality.rungs.append(line)
        if line.share is not None and line.accepted:
            weighted += line.share * line.accepted
            weight += line.accepted
        if line.below_target:
            quality.flagged.append(tier)
    quality.estimated_accuracy = weighted / weight if weight else None
    return quality


def _line(
    tier: str, accepted: int, judged: list[bool], target: float | None, reference: bool
) -> RungQuality:
    if not judged:
        return RungQuality(tier, accepted, 0, 0, None, None, None, reference=reference)
    right = sum(judged)
    low, high = wilson_interval(right, len(judged))
    below = target is not None and high < target
    return RungQuality(
        tier, accepted, len(judged), right, right / len(judged), low, high, below, reference
    )
