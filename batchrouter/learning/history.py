"""History to learn from: per item, each rung's answer, whether it passed the rung's form checks,
whether it was right, what it cost, and its signals.

Two sources:
- a replay table with gold answers (`expected` in the items file) or recorded correctness
  (the table's `score` column): every rung's answer is known for every item;
- ledger batches whose items carry `expected`: a rung's answer is known for the items that
  reached it (the cheap rung: all of them). Audited items (the top rung's answer bought for an
  item accepted lower) add their answers the same way, as ordinary attempts of that tier.

The signals a rung's acceptance can be calibrated on: `logprob` (the mean token probability,
from the table's logprobs or a logprob check's recorded score), `agreement` (the share of the
rung model's samples that agree with its first answer, from the table's extra rows, or a
consensus check's recorded score) and `router` (the fitted router's score, added by the fit). The "form checks" are the rung's checks other than those
signal checks: what the calibrated rule adds to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from batchrouter.evaluate import is_correct
from routing.checks import judge, normalize_label
from routing.config import RoutingConfig
from routing.prices import cost_usd
from routing.replay_table import ReplayTable
from routing.tokens import count_text_tokens
from routing.types import InputItem, Usage

# check kind -> the signal its recorded score is
SIGNAL_CHECKS = {"logprob": "logprob", "router_score": "router", "consensus": "agreement"}


@dataclass
class Answer:
    passed_checks: bool
    correct: bool
    cost_usd: float
    signals: dict[str, float] = field(default_factory=dict)
    samples: int = 1  # the rung model's answers the agreement was counted over


@dataclass
class HistoryItem:
    item: InputItem
    answers: dict[str, Answer]  # tier -> the rung's answer; absent: never asked


def form_checks(config: RoutingConfig, task_name: str, tier: str) -> list:
    """The rung's checks without the signal checks a fit replaces."""
    checks = config.task_type(task_name).checks_for(tier)
    return [c for c in checks if c.kind not in SIGNAL_CHECKS]


def from_replay(
    config: RoutingConfig, task_name: str, table: ReplayTable, items: Sequence[InputItem]
) -> list[HistoryItem]:
    """Each item's answer on each rung, from the first deployment of the rung's tier. Items
    with neither `expected` nor recorded scores teach nothing and are left out."""
    task = config.task_type(task_name)
    out = []
    for item in items:
        answers: dict[str, Answer] = {}
        for tier in task.tier_names:
            name = config.tier(tier).deployments[0]
            deployment = config.deployments[name]
            row = table.lookup(item.external_id, deployment.model)
            if row is None or row.error_class is not None:
                continue
            if row.score is not None:
                correct = row.score >= 0.5
            elif item.expected is not None:
                correct = is_correct(row.text, item.expected)
            else:
                continue
            checks = [c for c in form_checks(config, task_name, tier) if c.kind != "consensus"]
            judged = judge(checks, row.text, item.text, logprobs=row.logprobs, fields=item.fields)
            if row.cost_usd is not None:
                cost = row.cost_usd
            else:
                usage = (
                    Usage(**row.tokens)
                    if row.tokens
                    else _estimate(item.text, row.text, deployment.model)
                )
                cost = cost_usd(usage, config.prices_for(name))
            signals = {}
            if row.logprobs:
                signals["logprob"] = math.exp(sum(row.logprobs) / len(row.logprobs))
            texts = [sample.text for sample in table.samples(item.external_id, deployment.model)]
            if len(texts) >= 2:
                first = normalize_label(texts[0])
                signals["agreement"] = sum(normalize_label(t) == first for t in texts) / len(texts)
            answers[tier] = Answer(judged.passed, correct, cost, signals, max(len(texts), 1))
        if answers:
            out.append(HistoryItem(item, answers))
    return out


def _estimate(prompt: str, answer: str, model: str) -> Usage:
    return Usage(
        input_tokens=count_text_tokens(prompt, model),
        output_tokens=count_text_tokens(answer, model) if answer else 0,
        estimated=True,
    )


def from_ledger(batch_ids: Sequence[str]) -> tuple[str, RoutingConfig, list[HistoryItem]]:
    """The task type, the routing file the first batch ran under, and the history of the
    batches' items that carry `expected` or were audited."""
    from sqlalchemy import select

    from ledger.batches import find_batch
    from ledger.db import session_scope
    from ledger.models import Attempt, Item
    from routing.config import parse_config

    history: list[HistoryItem] = []
    task_name, config = "", None
    with session_scope(readonly=True) as session:
        for ref in batch_ids:
            batch = find_batch(session, ref)
            if config is None:
                task_name = batch.task_type
                config = parse_config(batch.config_yaml, f"batch {batch.id}", resolve_code=False)
            elif batch.task_type != task_name:
                raise ValueError(
                    f"batch {batch.id} is of task type {batch.task_type!r}, not {task_name!r}"
                )
            # In line order: the fit's split is by a seed over this list, so the same ledger
            # gives the same split and the same rules, whatever order its rows are stored in.
            items = session.scalars(
                select(Item).where(Item.batch_id == batch.id).order_by(Item.line_no, Item.id)
            ).all()
            by_item: dict[int, list[Attempt]] = {}
            for attempt in session.scalars(
                select(Attempt).where(Attempt.batch_id == batch.id).order_by(Attempt.attempt_no)
            ):
                by_item.setdefault(attempt.item_id, []).append(attempt)
            for item in items:
                top = config.task_type(task_name).tier_names[-1]
                answers = _ledger_answers(by_item.get(item.id, []), item.expected, top)
                if answers:
                    source = InputItem(
                        item.external_id,
                        item.text,
                        item.line_no,
                        item.expected,
                        dict(item.fields or {}),
                    )
                    history.append(HistoryItem(source, answers))
    if config is None:
        raise ValueError("no batches given")
    return task_name, config, history


def _ledger_answers(attempts: Sequence, expected: str | None, top: str) -> dict[str, Answer]:
    """Per tier, the judged answer of that tier (the first one), with what the tier cost.

    Right means equal to `expected`. An item without it is judged against the top rung's
    answer, taken as right: its audit answer (bought for a sample of the items accepted lower:
    routing/audit.py), or the answer it got when it climbed there. Neither: the item teaches
    nothing (empty)."""
    audit = next((a for a in attempts if a.outcome == "audit" and a.output is not None), None)
    climbed = next(
        (a for a in attempts if a.tier == top and a.outcome in ("passed", "check_failed")), None
    )
    reference = expected
    for found in (audit, climbed):
        if reference is None and found is not None:
            reference = found.output
    if reference is None:
        return {}
    answers: dict[str, Answer] = {}
    spent: dict[str, float] = {}
    for attempt in attempts:
        spent[attempt.tier] = spent.get(attempt.tier, 0.0) + float(attempt.cost_usd)
    for attempt in attempts:
        if attempt.outcome not in ("passed", "check_failed") or attempt.tier in answers:
            continue
        verdicts = [v for v in attempt.verdicts or [] if v.get("check") != "best_effort"]
        signals = {
            SIGNAL_CHECKS[v["check"]]: float(v.get("score", 0.0))
            for v in verdicts
            if v.get("check") in SIGNAL_CHECKS
        }
        passed = all(v.get("passed") for v in verdicts if v.get("check") not in SIGNAL_CHECKS)
        answers[attempt.tier] = Answer(
            passed, is_correct(attempt.output, reference), spent[attempt.tier], signals
        )
    if audit is not None and audit.tier not in answers:
        # What the audit rung would have answered (and cost) had the item climbed to it.
        answers[audit.tier] = Answer(
            True, is_correct(audit.output, reference), float(audit.cost_usd), {}
        )
    return answers
