"""One line of advice from a finished batch's ledger, with no fitting (the demo's last line).

A rung that accepted fewer than a fifth of the items reaching it is worth skipping (its calls
are mostly paid for nothing); otherwise the line names the rung that escalates most and the
command that would learn better rules (`batchrouter advise`, docs/learning.md).
"""

from __future__ import annotations

from sqlalchemy import select

from batchrouter.learning.advise import RARELY_PASSES
from ledger.db import session_scope
from ledger.models import Attempt, Batch, Item


def one_line_advice(batch_id: str) -> str:
    with session_scope(readonly=True) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            return f"no batch {batch_id}"
        rows = session.execute(select(Item.id, Item.tier).where(Item.batch_id == batch_id))
        final = {item_id: tier for item_id, tier in rows}
        reached: dict[str, set[int]] = {}
        spent: dict[str, float] = {}
        for item_id, tier, cost in session.execute(
            select(Attempt.item_id, Attempt.tier, Attempt.cost_usd).where(
                Attempt.batch_id == batch_id
            )
        ):
            reached.setdefault(tier, set()).add(item_id)
            spent[tier] = spent.get(tier, 0.0) + float(cost)
        task = batch.task_type
    order = [t for t in _ladder(batch.config_yaml, task) if t in reached]
    for tier in order[:-1]:
        ids = reached[tier]
        accepted = sum(final[i] == tier for i in ids) / len(ids)
        if accepted < RARELY_PASSES:
            return (
                f"advice: skip rung {tier}: it accepted {100 * accepted:.0f}% of the "
                f"{len(ids)} items that reached it, for ${spent[tier]:.4f}"
            )
    climbing = [
        (1 - sum(final[i] == t for i in reached[t]) / len(reached[t]), t) for t in order[:-1]
    ]
    if not climbing:
        return "advice: every item was accepted on its first rung; nothing to change"
    share, tier = max(climbing)
    return (
        f"advice: rung {tier} escalates {100 * share:.0f}% of its items; with `expected` in "
        f"the items, `batchrouter advise {task} --batch {batch_id[:8]}` fits rules to cut that"
    )


def _ladder(config_yaml: str, task: str) -> list[str]:
    from routing.config import parse_config

    return parse_config(config_yaml, resolve_code=False).task_type(task).tier_names
