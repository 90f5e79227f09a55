"""`batchrouter advise`: recommended changes to a task type's rules, each replayed on items the fit
never saw, with its effect on cost, accuracy and escalation.

Every what-if is a real `evaluate` run (batchrouter/evaluate.py: the worker's own inner loop
over the `replay` provider) of the current routing file and of the changed one, over the same
held-out items. The recorded answers come from the replay table given, or from the ledger
(exported as a replay table: an answer the ledger never bought, such as the top rung's for an
item accepted lower, is missing there). A what-if compares the two rule sets on the held-out
items whose every call, under both, found a recorded answer, and says how many it left out: an
unknown answer priced at nothing and counted wrong would make any rule that asks the missing
model look cheaper and worse than it is.

Recommendations:
- the fitted rules (calibrated acceptance and the pre-call router), from `batchrouter fit`;
- a rung that almost never passes: skip it;
- a cheaper deployment whose answers are as often right as a dearer one's: use it instead;
- the response cache, for a task type whose items repeat and whose cache is off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchrouter.evaluate import (
    Evaluation,
    ItemResult,
    StrategyResult,
    evaluate,
    run_strategy,
    summarize,
)
from batchrouter.learning.fit import Fit
from routing.config import RoutingConfig, parse_config
from routing.types import InputItem

RARELY_PASSES = 0.2  # a rung that accepts fewer than this share of the items reaching it
SAME_ACCURACY = 0.005  # a cheaper model "matches" a dearer one within half a point


@dataclass
class Advice:
    title: str
    routing_yaml: str | None  # the proposed routing file (None: a setting to change by hand)
    before: StrategyResult | None = None
    after: StrategyResult | None = None
    note: str = ""
    left_out: int = 0  # held-out items a call of either rule set found no recorded answer for

    @property
    def saves(self) -> float:
        if self.before is None or self.after is None:
            return 0.0
        return self.before.cost_usd - self.after.cost_usd

    def line(self) -> str:
        if self.before is None or self.after is None:
            return f"{self.title}: {self.note}"
        b, a = self.before, self.after
        gap = f"{self.left_out} left out: a call found no recorded answer" if self.left_out else ""
        said = "; ".join(part for part in (self.note, gap) if part)
        change = -100 * self.saves / b.cost_usd if b.cost_usd else 0.0
        return (
            f"{self.title}: cost ${b.cost_usd:.4f} -> ${a.cost_usd:.4f} ({change:+.0f}%), "
            f"accuracy {_pct(b.accuracy)} -> {_pct(a.accuracy)}, escalation "
            f"{_pct(escalation(b))} -> {_pct(escalation(a))} on {b.items} unseen items"
            + (f" ({said})" if said else "")
        )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def escalation(row: StrategyResult) -> float:
    """The share of items that climbed past the rung they started on."""
    climbed = sum(t.escalated for t in row.tiers)
    return climbed / row.items if row.items else 0.0


def replay_config(config: RoutingConfig, table: str | Path) -> RoutingConfig:
    """`config` with every deployment answered from `table` (prices kept)."""
    deployments = {}
    for name, deployment in config.deployments.items():
        prices = deployment.prices or config.prices_for(name)
        deployments[name] = deployment.model_copy(
            update={"provider": "replay", "replay_file": str(table), "prices": prices, "sim": None}
        )
    return config.model_copy(update={"deployments": deployments})


def walk(config: RoutingConfig, task: str, items: Sequence[InputItem]) -> list[ItemResult]:
    """Each item's walk up the ladder under `config` (batchrouter/evaluate.py)."""
    return asyncio.run(run_strategy(config, task, items))


@dataclass
class Baseline:
    """The current rules' walks of the held-out items, which every what-if is paired with."""

    config: RoutingConfig
    task: str
    items: Sequence[InputItem]
    walks: list[ItemResult]


def what_if(
    title: str, now: Baseline, proposed_yaml: str, table: str | Path, note: str = ""
) -> Advice | None:
    """The proposed routing file against the current rules, on the held-out items whose every
    call found a recorded answer under both (None: no such item)."""
    proposed = replay_config(parse_config(proposed_yaml, resolve_code=False), table)
    walks = walk(proposed, now.task, now.items)
    pairs = [
        (b, a)
        for b, a in zip(now.walks, walks, strict=True)
        if not (b.missing_outcome or a.missing_outcome)
    ]
    if not pairs:
        return None
    before = summarize("cascade", "cascade", now.config, now.task, [b for b, _ in pairs])
    after = summarize("cascade", "cascade", proposed, now.task, [a for _, a in pairs])
    return Advice(title, proposed_yaml, before, after, note, left_out=len(walks) - len(pairs))


def advise(
    config_text: str,
    task: str,
    table: str | Path,
    held_out: Sequence[InputItem],
    fitted: Fit | None,
) -> tuple[list[Advice], Evaluation]:
    """The recommendations, best saving first, and the current rules' evaluation."""
    config = replay_config(parse_config(config_text, resolve_code=False), table)
    current = evaluate(config, task, held_out)
    now = current.row("cascade")
    baseline = Baseline(config, task, held_out, walk(config, task, held_out))
    found: list[Advice | None] = []
    if fitted is not None and fitted.routing_yaml:
        found.append(
            what_if("use the fitted rules", baseline, fitted.routing_yaml, table, _fit_note(fitted))
        )
    found += _skip_rungs(config_text, baseline, table, now)
    found += _cheaper_deployments(config_text, baseline, table, current)
    found += _cache(config_text, config, task, held_out)
    return _best_first([a for a in found if a is not None and _helps(a)]), current


def _best_first(found: list[Advice]) -> list[Advice]:
    found.sort(key=lambda a: (a.after is None, -a.saves))
    return found


def _helps(advice: Advice) -> bool:
    """Cheaper, or more accurate: a change that is neither is not advice."""
    if advice.before is None or advice.after is None:
        return True
    before, after = advice.before.accuracy or 0.0, advice.after.accuracy or 0.0
    return advice.saves > 1e-12 or after > before


def _fit_note(fitted: Fit) -> str:
    rules = [
        f"{tier}: {found.rule.describe() if found.rule else 'skip the rung'}"
        for tier, found in fitted.plan.calibrated.items()
    ]
    if fitted.plan.skip_below and any(f.rule for f in fitted.plan.calibrated.values()):
        rules.append(f"items scored below {fitted.plan.skip_below:g} start on the second rung")
    return "; ".join(rules)


def _edited(config_text: str, task: str, change: Any) -> str:
    data = yaml.safe_load(config_text)
    change(data, data["task_types"][task])
    return yaml.safe_dump(data, sort_keys=False)


def _skip_rungs(
    text: str, now: Baseline, table: str | Path, current: StrategyResult
) -> list[Advice | None]:
    out = []
    for flow in current.tiers[:-1]:
        if not flow.reached or 1 - flow.rate >= RARELY_PASSES:
            continue

        def drop(_data: dict, spec: dict, tier: str = flow.tier) -> None:
            spec["ladder"] = [
                r for r in spec["ladder"] if (r if isinstance(r, str) else r["tier"]) != tier
            ]

        share = f"it accepts {100 * (1 - flow.rate):.0f}% of the items that reach it"
        out.append(
            what_if(f"skip rung {flow.tier}", now, _edited(text, now.task, drop), table, share)
        )
    return out


def _cheaper_deployments(
    text: str, now: Baseline, table: str | Path, current: Evaluation
) -> list[Advice | None]:
    # A model whose answers the history lacks for some items (the ledger holds the top rung's
    # answer only for items that climbed or were audited) cannot be compared: its accuracy
    # there counts the missing answers as wrong.
    singles = [
        r
        for r in current.rows
        if r.kind == "single" and r.accuracy is not None and not r.missing_outcomes
    ]
    out = []
    for dear in singles:
        for cheap in singles:
            if cheap.cost_usd >= dear.cost_usd or (cheap.accuracy or 0) + SAME_ACCURACY < (
                dear.accuracy or 0
            ):
                continue

            def swap(data: dict, _spec: dict, a: str = dear.name, b: str = cheap.name) -> None:
                for tier in data["tiers"]:
                    tier["deployments"] = [b if d == a else d for d in tier["deployments"]]
                    tier["deployments"] = list(dict.fromkeys(tier["deployments"]))

            note = f"alone: {_pct(cheap.accuracy)} vs {_pct(dear.accuracy)}"
            title = f"use {cheap.name} instead of {dear.name}"
            try:
                out.append(what_if(title, now, _edited(text, now.task, swap), table, note))
            except Exception:  # a swap that leaves the file invalid (a consensus of one model)
                continue
    return out


def _cache(text: str, config: RoutingConfig, task: str, items: Sequence[InputItem]) -> list[Advice]:
    if config.task_type(task).cache:
        return []
    texts = [(i.text, tuple(sorted(i.fields.items()))) for i in items]
    repeats = len(texts) - len(set(texts))
    if not items or repeats / len(items) < 0.05:
        return []

    def on(_data: dict, spec: dict) -> None:
        spec["cache"] = True

    share = 100 * repeats / len(items)
    return [
        Advice(
            "turn the cache on",
            _edited(text, task, on),
            note=f"{share:.0f}% of the items repeat an earlier item: their calls would cost nothing",
        )
    ]
