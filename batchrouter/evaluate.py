"""Evaluate a cascade against every single model, over recorded outcomes and gold answers.

The real pipeline minus the queue: each item goes through the worker's own inner loop
(`worker.attempt.run_item`: same prompts, same checks, same escalation policy) tier
after tier, exactly as the workers would move it, with the deployments usually served by the
`replay` provider. No database and no broker: items are in-memory `ClaimedItem`s and items run
concurrently on one event loop, in chunks.

For the configured ladder and for every deployment alone (a one-tier ladder) it reports
accuracy (items that ended succeeded with the expected answer, compared after label
normalisation), total and per-item cost (every call, escalated and failed ones included), both as
a percentage of the most expensive single model's, and the escalation rate of each tier.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ledger.models import ItemState
from ledger.outcomes import AttemptRecord, ClaimedItem
from producers.readers import read_items
from routing.audit import matches_expected
from routing.checks import normalize_label
from routing.config import RoutingConfig
from routing.policy import Step, next_tier, when_rung_down
from routing.rungs import Acceptance, Rung
from routing.tiers import Tier
from routing.types import InputItem
from routing.votes import Vote
from worker.attempt import run_item
from worker.votes import answer_of

MISSING_PREFIX = "no recorded outcome"
SINGLE_TIER = "single"


class EvaluationError(ValueError):
    """An evaluation that cannot run: the message says what to fix."""


@dataclass
class ItemResult:
    external_id: str
    state: str  # succeeded | failed
    output: str | None
    correct: float | None  # 1 right, 0 wrong, a recorded score; None: nothing to judge by
    cost_usd: float
    calls: int
    path: list[tuple[str, str]]  # (tier, what happened there: succeeded | failed | escalated)
    missing_outcome: bool = False  # a call found no recorded outcome in the replay table


@dataclass
class TierFlow:
    tier: str
    reached: int = 0
    escalated: int = 0

    @property
    def rate(self) -> float:
        return self.escalated / self.reached if self.reached else 0.0


@dataclass
class StrategyResult:
    name: str
    kind: Literal["cascade", "single"]
    ladder: list[str]
    models: list[str]
    items: int = 0
    with_expected: int = 0
    correct: float = 0  # items right (a recorded score counts as its fraction)
    succeeded: int = 0
    calls: int = 0
    cost_usd: float = 0.0
    missing_outcomes: int = 0
    tiers: list[TierFlow] = field(default_factory=list)
    accuracy_pct_of_reference: float | None = None
    cost_pct_of_reference: float | None = None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.with_expected if self.with_expected else None

    @property
    def cost_per_item(self) -> float:
        return self.cost_usd / self.items if self.items else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "ladder": self.ladder,
            "models": self.models,
            "items": self.items,
            "with_expected": self.with_expected,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "succeeded": self.succeeded,
            "calls": self.calls,
            "cost_usd": self.cost_usd,
            "cost_per_item_usd": self.cost_per_item,
            "accuracy_pct_of_reference": self.accuracy_pct_of_reference,
            "cost_pct_of_reference": self.cost_pct_of_reference,
            "missing_outcomes": self.missing_outcomes,
            "escalation": [
                {"tier": t.tier, "reached": t.reached, "escalated": t.escalated, "rate": t.rate}
                for t in self.tiers
            ],
        }


@dataclass
class Evaluation:
    task_type: str
    items: int
    rows: list[StrategyResult]
    reference: str | None  # the single model with the highest total cost
    elapsed_s: float = 0.0

    def row(self, name: str) -> StrategyResult:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "items": self.items,
            "reference": self.reference,
            "elapsed_s": round(self.elapsed_s, 3),
            "rows": [row.as_dict() for row in self.rows],
        }


# ---------------------------------------------------------------- running


async def _no_sleep(_seconds: float) -> None:
    return None


def is_correct(output: str | None, expected: str) -> bool:
    return matches_expected(output, expected)


async def walk_item(
    item: InputItem, index: int, config: RoutingConfig, task_name: str
) -> ItemResult:
    """One item up the ladder, claim after claim, as the workers would move it."""
    task = config.task_type(task_name)
    claimed = ClaimedItem(
        id=index,
        batch_id="evaluate",
        external_id=item.external_id,
        text=item.text,
        expected=item.expected,
        fields=dict(item.fields),
        tier=entry_tier(config, task_name, item.text),
        attempts=0,
        cost_usd=0.0,
        last_output=None,
        last_error=None,
    )
    rng = random.Random(index)
    answered: list[AttemptRecord] = []  # every answer the walk bought, for recorded scores
    path: list[tuple[str, str]] = []
    cost, calls, missing = 0.0, 0, False
    output: str | None = None
    while True:
        outcome = await run_item(claimed, config, task_name, sleep=_no_sleep, rng=rng)
        cost += sum(record.cost_usd for record in outcome.attempts)
        calls += len(outcome.attempts)
        missing = missing or any(
            (record.error_message or "").startswith(MISSING_PREFIX) for record in outcome.attempts
        )
        answered += [r for r in outcome.attempts if answer_of(r) is not None]
        if outcome.output is not None:
            output = outcome.output
        if outcome.parked and outcome.resume_in_s is not None:
            # The rung is down (a recorded transient failure): in a replay the outage never
            # ends, so do what the pipeline does once outage_wait_s has passed.
            after = when_rung_down(task, claimed.tier, float("inf"))
            if after is Step.ESCALATE:
                outcome.next_tier = next_tier(task, claimed.tier) or claimed.tier
        climbs = outcome.next_state == ItemState.QUEUED and outcome.next_tier != claimed.tier
        if climbs:
            path.append((claimed.tier, "escalated"))
            # The answers bought on this rung are votes on the next (as the ledger keeps them).
            votes = [(r.deployment, answer_of(r)) for r in outcome.attempts]
            claimed = replace(
                claimed,
                votes=claimed.votes + tuple(Vote(d, a) for d, a in votes if a is not None),
                tier=outcome.next_tier,
                attempts=claimed.attempts + len(outcome.attempts),
                cost_usd=cost,
                last_output=output,
                last_error=outcome.error,
            )
            continue
        state = (
            ItemState.SUCCEEDED.value
            if outcome.next_state == ItemState.SUCCEEDED
            else ItemState.FAILED.value
        )
        path.append((claimed.tier, state))
        break
    correct: float | None = None
    score = recorded_score(config, answered, output)
    if score is not None:
        correct = score if state == ItemState.SUCCEEDED.value else 0.0
    elif item.expected is not None:
        correct = float(state == ItemState.SUCCEEDED.value and is_correct(output, item.expected))
    return ItemResult(item.external_id, state, output, correct, cost, calls, path, missing)


def entry_tier(config: RoutingConfig, task_name: str, text: str) -> str:
    """The rung an item starts on: the first, or the one the task type's fitted router picks
    (routing/learned/entry.py), as producers/submit.py does."""
    task = config.task_type(task_name)
    if task.router is None or task.router.skip_below is None:
        return task.ladder[0].tier
    from routing.learned.entry import entry_tiers

    return entry_tiers(task.router, task.tier_names, [text])[0]


def recorded_score(
    config: RoutingConfig, answered: Sequence[AttemptRecord], output: str | None
) -> float | None:
    """The replay table's recorded correctness of the answer the item kept: the score of the
    first row served whose answer is that output (a consensus keeps another model's answer),
    None when no such row records one."""
    if output is None:
        return None
    from providers.replay import load_table

    for record in answered:
        answer = answer_of(record) or ""
        if answer.strip() != output.strip() and normalize_label(answer) != normalize_label(output):
            continue
        request_id = record.request_id or ""
        deployment = config.deployments.get(record.deployment)
        if not request_id.startswith("replay:") or deployment is None or not deployment.replay_file:
            continue
        row = load_table(deployment.replay_file).row_at(int(request_id.rsplit(":", 1)[1]))
        if row is not None and row.score is not None:
            return row.score
    return None


async def run_strategy(
    config: RoutingConfig, task_name: str, items: Sequence[InputItem], chunk_size: int = 500
) -> list[ItemResult]:
    results: list[ItemResult] = []
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        results.extend(
            await asyncio.gather(
                *(
                    walk_item(item, start + offset, config, task_name)
                    for offset, item in enumerate(chunk)
                )
            )
        )
    return results


def summarize(
    name: str,
    kind: Literal["cascade", "single"],
    config: RoutingConfig,
    task_name: str,
    results: Sequence[ItemResult],
) -> StrategyResult:
    ladder = config.task_type(task_name).tier_names
    models: list[str] = []
    for tier in ladder:
        for deployment in config.tier(tier).deployments:
            model = config.deployments[deployment].model
            if model not in models:
                models.append(model)
    flows = {tier: TierFlow(tier) for tier in ladder}
    row = StrategyResult(name, kind, list(ladder), models, tiers=list(flows.values()))
    for result in results:
        row.items += 1
        row.calls += result.calls
        row.cost_usd += result.cost_usd
        row.succeeded += result.state == ItemState.SUCCEEDED.value
        row.missing_outcomes += result.missing_outcome
        if result.correct is not None:
            row.with_expected += 1
            row.correct += result.correct
        for tier, what in result.path:
            flows[tier].reached += 1
            flows[tier].escalated += what == "escalated"
    return row


def single_model_config(config: RoutingConfig, task_name: str, deployment: str) -> RoutingConfig:
    """The model alone: one tier holding one deployment, one call per item, no checks (the
    cascade's checks, a consensus above all, would make it pay for other models or retry):
    its answer is the final word, so its cost is what that model alone would cost."""
    task = config.task_type(task_name)
    alone = Rung(tier=SINGLE_TIER, accept=Acceptance(checks=[], best_effort=True))
    return RoutingConfig(
        deployments={deployment: config.deployments[deployment]},
        tiers=[Tier(name=SINGLE_TIER, deployments=[deployment])],
        task_types={
            task_name: task.model_copy(
                update={"ladder": [alone], "checks": [], "max_attempts": 1, "transient_retries": 0}
            )
        },
    )


def check_runnable(config: RoutingConfig, task_name: str) -> None:
    """Fail before running: unknown task type, deployments without prices, unreadable tables."""
    try:
        config.task_type(task_name)
    except KeyError as exc:
        raise EvaluationError(str(exc.args[0])) from None
    from providers.replay import load_table
    from routing.replay_table import ReplayTableError

    for name, deployment in config.deployments.items():
        try:
            config.prices_for(name)
        except KeyError as exc:
            raise EvaluationError(
                f"deployment {name!r}: {exc.args[0]}; give it `prices:` in the routing file"
            ) from None
        if deployment.provider == "replay":
            if not deployment.replay_file:
                raise EvaluationError(f"deployment {name!r}: provider replay needs replay_file")
            try:
                load_table(deployment.replay_file)
            except ReplayTableError as exc:
                raise EvaluationError(f"deployment {name!r}: {exc}") from None


def resolve_replay_files(config: RoutingConfig, base: Path) -> RoutingConfig:
    """Relative replay_file paths are read from the routing file's folder (when found there)."""
    deployments = {}
    for name, deployment in config.deployments.items():
        file = deployment.replay_file
        if file and not Path(file).is_absolute() and (base / file).is_file():
            deployment = deployment.model_copy(update={"replay_file": str((base / file).resolve())})
        deployments[name] = deployment
    return config.model_copy(update={"deployments": deployments})


def evaluate(
    config: RoutingConfig,
    task_name: str,
    items: Sequence[InputItem],
    *,
    baselines: bool = True,
    chunk_size: int = 500,
) -> Evaluation:
    """The cascade, then (with `baselines`) every deployment alone, over the same items."""
    check_runnable(config, task_name)
    if not items:
        raise EvaluationError("no items to evaluate")
    started = time.perf_counter()
    plans: list[tuple[str, Literal["cascade", "single"], RoutingConfig]] = [
        ("cascade", "cascade", config)
    ]
    if baselines:
        for name in config.deployments:
            plans.append((name, "single", single_model_config(config, task_name, name)))

    async def run_all() -> list[StrategyResult]:
        rows = []
        for name, kind, plan in plans:
            results = await run_strategy(plan, task_name, items, chunk_size)
            rows.append(summarize(name, kind, plan, task_name, results))
        return rows

    rows = asyncio.run(run_all())
    singles = [row for row in rows if row.kind == "single"]
    reference = max(singles, key=lambda row: row.cost_usd) if singles else None
    if reference is not None:
        for row in rows:
            if reference.accuracy and row.accuracy is not None:
                row.accuracy_pct_of_reference = 100 * row.accuracy / reference.accuracy
            if reference.cost_usd:
                row.cost_pct_of_reference = 100 * row.cost_usd / reference.cost_usd
    return Evaluation(
        task_type=task_name,
        items=len(items),
        rows=rows,
        reference=reference.name if reference else None,
        elapsed_s=time.perf_counter() - started,
    )


def evaluate_files(
    config_path: str | Path,
    task_name: str,
    items_path: str | Path,
    *,
    baselines: bool = True,
    chunk_size: int = 500,
) -> Evaluation:
    """`evaluate` over a routing file and an items file (JSONL or CSV with id, text, expected).

    Raises ConfigError, InputError or EvaluationError with a message naming what is wrong.
    """
    from routing.config import load_config

    config_path = Path(config_path)
    config = resolve_replay_files(load_config(config_path), config_path.resolve().parent)
    items = read_items(items_path)
    return evaluate(config, task_name, items, baselines=baselines, chunk_size=chunk_size)
