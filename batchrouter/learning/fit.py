"""`batchrouter fit`: learn a task type's router and calibrated acceptance from its history.

1. Split the history by a fixed seed: a share held out (`holdout`, never seen by the fit: the
   figures are measured there), the rest halved into the router's training part and the
   calibration part (the router's score is a signal only on items it was not trained on).
2. Fit the pre-call router (scikit-learn TF-IDF + logistic regression) on whether the first
   rung's answer passed its checks and was right; store it as plain JSON numbers.
3. Choose `skip_below` (none, 0.2, 0.3, 0.4, 0.5) by the cost of the whole plan on the
   training part; then calibrate every rung but the last on the calibration items that would
   reach it (routing/learned/calibration.py), at level delta / rungs (Bonferroni: every
   calibrated rule holds together). The calibration part decides nothing else, so the bound
   is the calibration's.
4. Write the artefact (JSON, named by its hash) and the proposed routing file.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batchrouter.learning.history import SIGNAL_CHECKS, HistoryItem
from routing.config import RoutingConfig
from routing.learned.artefact import write_artefact
from routing.learned.calibration import CHECKS_ONLY, Calibrated, Rule, Sample, calibrate
from routing.learned.router import TextRouter

SKIP_CANDIDATES = (None, 0.2, 0.3, 0.4, 0.5)


@dataclass
class Figures:
    items: int = 0
    correct: int = 0
    cost_usd: float = 0.0
    escalated: int = 0  # items that climbed past the rung they started on
    skipped: int = 0  # items the router started above the first rung
    unknown: int = 0  # items whose final answer the history lacks
    accepted_below_top: int = 0  # answers accepted on a rung below the last
    wrong_below_top: int = 0  # of those, wrong: the share the calibration bounds

    @property
    def accuracy(self) -> float:
        judged = self.items - self.unknown
        return self.correct / judged if judged else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "accuracy": self.accuracy,
            "cost_usd": self.cost_usd,
            "escalated": self.escalated,
            "skipped": self.skipped,
            "unknown": self.unknown,
            "accepted_below_top": self.accepted_below_top,
            "wrong_below_top": self.wrong_below_top,
        }


@dataclass
class Plan:
    """Where items start and what each rung below the last accepts (None: nothing)."""

    ladder: list[str]
    skip_below: float | None = None
    rules: dict[str, Rule | None] = field(default_factory=dict)
    calibrated: dict[str, Calibrated] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)  # per rung: answers agreement counts


@dataclass
class Fit:
    task_type: str
    plan: Plan
    router: TextRouter | None
    held_out: list[HistoryItem]
    fitted: Figures
    fixed: Figures
    artefact: Path | None = None
    sha256: str | None = None
    routing_yaml: str | None = None


def split(
    history: Sequence[HistoryItem], holdout: float, seed: int
) -> tuple[list[HistoryItem], list[HistoryItem], list[HistoryItem]]:
    """(router training, calibration, held out), fixed by `seed`."""
    shuffled = list(history)
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * holdout)
    held_out, rest = shuffled[:cut], shuffled[cut:]
    half = len(rest) // 2
    return rest[:half], rest[half:], held_out


ROUTER_BACKENDS = ("tfidf", "lsa")
LSA_DIMENSIONS = 64  # at most; fewer when the history has fewer items or terms
LSA_TERMS = 5_000  # the artefact stores dimensions x terms numbers: about 6 MB of JSON at most


def fit_router(
    items: Sequence[HistoryItem], tier: str, backend: str = "tfidf"
) -> TextRouter | None:
    """TF-IDF (then, with `lsa`, an LSA embedding) + logistic regression on "the first rung's
    answer passed and was right"."""
    if backend not in ROUTER_BACKENDS:
        raise ValueError(
            f"unknown router backend {backend!r}; choose from {', '.join(ROUTER_BACKENDS)}"
        )
    known = [h for h in items if tier in h.answers]
    labels = [int(h.answers[tier].passed_checks and h.answers[tier].correct) for h in known]
    if len(known) < 20 or len(set(labels)) < 2:
        return None
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover - the extra is not installed
        raise RuntimeError(
            "fitting a router needs scikit-learn: pip install 'batchrouter[learning]'"
        ) from None
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=2,
        max_features=LSA_TERMS if backend == "lsa" else 50_000,
    )
    matrix = vectorizer.fit_transform([h.item.text for h in known])
    components: tuple[tuple[float, ...], ...] = ()
    dimensions = min(LSA_DIMENSIONS, matrix.shape[1] - 1, len(known) - 1)
    if backend == "lsa" and dimensions >= 2:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.preprocessing import normalize

        svd = TruncatedSVD(n_components=dimensions, random_state=0)
        matrix = normalize(svd.fit_transform(matrix))
        components = tuple(tuple(float(x) for x in row) for row in svd.components_)
    model = LogisticRegression(C=4.0, max_iter=2000)
    model.fit(matrix, labels)
    return TextRouter(
        vocabulary={str(t): int(c) for t, c in vectorizer.vocabulary_.items()},
        idf=[float(x) for x in vectorizer.idf_],
        coef=[float(x) for x in model.coef_[0]],
        intercept=float(model.intercept_[0]),
        ngram_max=2,
        sublinear_tf=True,
        components=components,
    )


def add_router_scores(items: Sequence[HistoryItem], router: TextRouter, tier: str) -> None:
    for h in items:
        if tier in h.answers:
            h.answers[tier].signals["router"] = router.score(h.item.text)


def _start(plan: Plan, h: HistoryItem) -> int:
    score = h.answers.get(plan.ladder[0])
    value = score.signals.get("router") if score else None
    if plan.skip_below is not None and value is not None and value < plan.skip_below:
        return 1
    return 0


def simulate(plan: Plan, items: Sequence[HistoryItem]) -> Figures:
    """Walk each item up the plan's ladder over its recorded answers. A rung whose answer the
    history lacks (the ledger holds the top rung's answer only for items that climbed, or were
    audited) is priced at that rung's mean cost, and the item's accuracy counts as unknown."""
    known: dict[str, list[float]] = {}
    for h in items:
        for tier, recorded in h.answers.items():
            known.setdefault(tier, []).append(recorded.cost_usd)
    mean_cost = {tier: sum(costs) / len(costs) for tier, costs in known.items()}
    figures = Figures()
    for h in items:
        start, cost, correct = _start(plan, h), 0.0, None
        for position in range(start, len(plan.ladder)):
            last = position == len(plan.ladder) - 1
            tier = plan.ladder[position]
            if not last and tier in plan.rules and plan.rules[tier] is None:
                continue  # a rung that can accept nothing is left out of the ladder
            answer = h.answers.get(tier)
            if answer is None:
                cost += mean_cost.get(tier, 0.0)
                break
            cost += answer.cost_usd
            rule = plan.rules.get(tier)
            sample = Sample(answer.passed_checks, answer.correct, answer.signals)
            if last or (rule is not None and rule.accepts(sample)):
                correct = answer.correct and (answer.passed_checks or last)
                if not last:
                    figures.accepted_below_top += 1
                    figures.wrong_below_top += not correct
                break
        figures.items += 1
        figures.cost_usd += cost
        figures.skipped += start > 0
        figures.escalated += position > start and any(
            plan.rules.get(t) is not None for t in plan.ladder[start:position]
        )
        if correct is None:
            figures.unknown += 1
        else:
            figures.correct += correct
    return figures


def calibrate_plan(
    ladder: list[str],
    items: Sequence[HistoryItem],
    alpha: float,
    delta: float,
    skip: float | None,
    level: float,
) -> Plan:
    plan = Plan(list(ladder), skip)
    for position, tier in enumerate(ladder[:-1]):
        reaching = []
        for h in items:
            if tier not in h.answers or _start(plan, h) > position:
                continue
            if any(
                plan.rules.get(lower) is not None
                and lower in h.answers
                and plan.rules[lower].accepts(_sample(h, lower))  # type: ignore[union-attr]
                for lower in ladder[_start(plan, h) : position]
            ):
                continue
            reaching.append(_sample(h, tier))
        found = calibrate(reaching, alpha, level, signals=_signals(reaching))
        plan.calibrated[tier] = found
        plan.rules[tier] = found.rule
        plan.samples[tier] = max(
            (h.answers[tier].samples for h in items if tier in h.answers), default=1
        )
    return plan


def _signals(samples: Sequence[Sample]) -> list[str]:
    """The signals worth testing: those most answers carry (a threshold on a signal that few
    answers have would accept few; testing it would only spend delta)."""
    counts: dict[str, int] = {}
    for sample in samples:
        for name in sample.signals:
            counts[name] = counts.get(name, 0) + 1
    return sorted(name for name, count in counts.items() if count >= len(samples) / 2)


def _sample(h: HistoryItem, tier: str) -> Sample:
    answer = h.answers[tier]
    return Sample(answer.passed_checks, answer.correct, answer.signals)


def fixed_plan(ladder: list[str]) -> Plan:
    """The hand-written rules: a rung accepts what passes its form checks."""
    return Plan(list(ladder), None, {tier: Rule(CHECKS_ONLY) for tier in ladder[:-1]})


def fit(
    task_name: str,
    ladder: list[str],
    history: Sequence[HistoryItem],
    *,
    alpha: float,
    delta: float,
    holdout: float = 0.3,
    seed: int = 0,
    use_router: bool = True,
    router_backend: str = "tfidf",
) -> Fit:
    train, calibration, held_out = split(history, holdout, seed)
    use_router = use_router and len(ladder) > 1
    router = fit_router(train, ladder[0], router_backend) if use_router else None
    if router is not None:
        add_router_scores(calibration + held_out, router, ladder[0])
    level = delta / max(len(ladder) - 1, 1)  # Bonferroni across the rungs
    skip = None
    priced = sum(ladder[1] in h.answers for h in train) >= 10 if len(ladder) > 1 else False
    # Chosen on the training part, so the calibration part stays unseen; and only when the
    # history holds enough answers of the second rung to price starting there.
    if router is not None and priced:
        add_router_scores(train, router, ladder[0])
        plans = [calibrate_plan(ladder, train, alpha, delta, s, level) for s in SKIP_CANDIDATES]
        skip = min(plans, key=lambda p: simulate(p, train).cost_usd).skip_below
    best = calibrate_plan(ladder, calibration, alpha, delta, skip, level)
    return Fit(
        task_name,
        best,
        router,
        held_out,
        simulate(best, held_out),
        simulate(fixed_plan(ladder), held_out),
    )


def save(result: Fit, config_text: str, out_dir: str | Path, history_note: dict[str, Any]) -> None:
    """Write the artefact and the proposed routing file's text into `result`."""
    plan = result.plan
    data = {
        "task_type": result.task_type,
        "router": result.router.as_dict() if result.router else None,
        "router_tier": plan.ladder[0] if result.router else None,
        "skip_below": plan.skip_below,
        "rungs": {tier: found.as_dict() for tier, found in plan.calibrated.items()},
        "held_out": {"fitted": result.fitted.as_dict(), "fixed": result.fixed.as_dict()},
        "history": history_note,
    }
    path, digest = write_artefact(out_dir, data)
    result.artefact, result.sha256 = path, digest
    result.routing_yaml = proposed_routing(config_text, result.task_type, plan, str(path), digest)


def proposed_routing(text: str, task_name: str, plan: Plan, file: str, sha256: str) -> str:
    """The routing file with the task type's rungs accepting by the fitted rules, a rung that
    can accept nothing left out, and `router:` naming the artefact by path and hash."""
    data = yaml.safe_load(text)
    task = data["task_types"][task_name]
    task_kinds = {c.get("kind") for c in task.get("checks") or []}
    ladder: list[Any] = []
    for entry in task["ladder"]:
        rung: dict[str, Any] = {"tier": entry} if isinstance(entry, str) else dict(entry)
        tier = rung["tier"]
        if tier in plan.rules and plan.rules[tier] is None:
            continue  # nothing it answers can be proven right often enough: skip the rung
        if tier in plan.rules:
            check = _signal_check(plan.rules[tier], file, sha256, plan.samples.get(tier, 1))
            rung["accept"] = _accept(dict(rung.get("accept") or {}), check, task_kinds)
        ladder.append(rung["tier"] if list(rung) == ["tier"] else rung)
    task["ladder"] = ladder
    task["router"] = {"file": file, "sha256": sha256}
    if plan.skip_below is not None and len(ladder) > 1:
        task["router"]["skip_below"] = plan.skip_below
    return yaml.safe_dump(data, sort_keys=False)


def _accept(
    accept: dict[str, Any], added: dict[str, Any] | None, task_kinds: set[str]
) -> dict[str, Any]:
    """The rung's acceptance with its signal checks replaced by `added` (none: the form checks
    alone); the task type's own signal checks are dropped on this rung."""

    def keep(check: dict[str, Any]) -> bool:
        return check.get("kind") not in SIGNAL_CHECKS

    extra = [added] if added is not None else []
    if accept.get("checks") is not None:
        accept["checks"] = [c for c in accept["checks"] if keep(c)] + extra
        return accept
    accept["add"] = [c for c in accept.get("add") or [] if keep(c)] + extra
    drops = sorted(set(accept.get("drop") or []) | (task_kinds & set(SIGNAL_CHECKS)))
    if drops:
        accept["drop"] = drops
    return {k: v for k, v in accept.items() if v not in ([], None)}


def _signal_check(rule: Rule | None, file: str, sha256: str, samples: int) -> dict[str, Any] | None:
    if rule is None or rule.signal == CHECKS_ONLY:
        return None
    if rule.signal == "logprob":
        return {"kind": "logprob", "measure": "mean", "min_prob": rule.threshold}
    if rule.signal == "router":
        return {"kind": "router_score", "file": file, "sha256": sha256, "min_score": rule.threshold}
    if rule.signal == "agreement" and samples >= 2:
        # m of k samples of the rung's own deployment agree: the first answer's agreement
        # share >= threshold, as the history measured it.
        return {
            "kind": "consensus",
            "k": samples,
            "m": max(1, math.ceil(rule.threshold * samples - 1e-9)),
        }
    raise ValueError(f"no check expresses a threshold on {rule.signal!r}")


def ladder_of(config: RoutingConfig, task_name: str) -> list[str]:
    return config.task_type(task_name).tier_names
