"""Acceptance thresholds with a finite-sample bound on the share of accepted answers that are wrong.

The question for one rung: accept an answer that passed the rung's checks only when a signal
(token-logprob confidence, the router's score, ...) reaches a threshold. Which thresholds keep
the error rate among accepted answers at most `alpha`, and which of those accepts the most (the
cheapest: what a rung does not accept climbs to a dearer one)?

The method is Learn-then-Test (Angelopoulos, Bates, Candes, Jordan, Lei: "Learn then Test:
Calibrating Predictive Algorithms to Achieve Risk Control", arXiv 2110.01052), with where each
sequence starts chosen on a separate split, as Pareto Testing orders its hypotheses
(Laufer-Goldshtein, Fisch, Barzilay, Jaakkola, ICLR 2023, arXiv 2210.07913):

1. Every candidate rule (a signal and a threshold on a grid fixed in advance, or the checks
   alone) is a null hypothesis "its error rate among accepted answers exceeds alpha".
2. A rule's p-value is the binomial tail P(Bin(n, alpha) <= k), with n answers accepted and k
   of them wrong (exact at any n, as Clopper-Pearson's bound; given n, the errors of
   exchangeable items are binomial).
3. The rules form families: the checks alone, and one per signal. The families share delta
   equally (Bonferroni). Within a signal the error rate falls as the threshold rises, so its
   rules are tested in a fixed sequence, strictest first, stopping at the first not rejected
   (no multiplicity cost inside the family).
4. The calibration items are split at random: the first part (`order_share`) only chooses
   where each sequence starts (the strictest threshold it expects the test to prove), so too
   few items at the strictest thresholds cannot end a sequence before it begins; the second
   part is the test. The family-wise error is at most delta: every rule rejected, and so
   whichever of them is picked, has error <= alpha with probability >= 1 - delta.
5. Of the rules proven, the one that accepts the most calibration items is chosen (the lowest
   expected cost). None proven: the rung should accept nothing (skip it).

The guarantee holds for items drawn like the calibration items (exchangeable), per rung, for
the answers that reach that rung. tests/routing/test_calibration.py checks it on many random
splits of synthetic data whose truth is known.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CHECKS_ONLY = "checks"  # the candidate that accepts whatever passes the rung's checks
# Thresholds tried for every signal (signals are probabilities or scores in [0, 1]). Fixed
# before any data is seen, as Learn-then-Test requires.
GRID = tuple(round(i / 100, 2) for i in range(1, 100))


@dataclass(frozen=True)
class Sample:
    """One answer a rung gave: did it pass the rung's checks, was it right, and its signals."""

    passed_checks: bool
    correct: bool
    signals: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """Accept an answer that passed the checks when `signal` >= `threshold` (CHECKS_ONLY:
    whatever passed the checks)."""

    signal: str
    threshold: float = 0.0

    def accepts(self, sample: Sample) -> bool:
        if not sample.passed_checks:
            return False
        if self.signal == CHECKS_ONLY:
            return True
        value = sample.signals.get(self.signal)
        return value is not None and value >= self.threshold

    def describe(self) -> str:
        if self.signal == CHECKS_ONLY:
            return "the checks alone"
        return f"{self.signal} >= {self.threshold:g}"


@dataclass(frozen=True)
class Calibrated:
    """What calibration proved for one rung."""

    alpha: float
    delta: float
    rule: Rule | None  # None: no rule could be proven; the rung should accept nothing
    samples: int  # calibration answers in all
    tested: int  # answers in the testing split
    accepted: int  # answers the rule accepts, all calibration answers
    wrong: int  # of those, wrong
    p_value: float | None  # the rule's p-value on the testing split
    proven: int  # how many candidate rules the fixed sequence rejected

    @property
    def acceptance(self) -> float:
        return self.accepted / self.samples if self.samples else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "alpha": self.alpha,
            "delta": self.delta,
            "signal": self.rule.signal if self.rule else None,
            "threshold": self.rule.threshold if self.rule else None,
            "samples": self.samples,
            "tested": self.tested,
            "accepted": self.accepted,
            "wrong": self.wrong,
            "p_value": self.p_value,
            "proven": self.proven,
        }


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) <= k), summed in log space (exact for the sizes a ledger holds)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(
            base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        )
    return min(total, 1.0)


def p_value(wrong: int, accepted: int, alpha: float) -> float:
    """The chance of `wrong` or fewer errors in `accepted` answers if the true error rate were
    alpha: small means the rule's error rate is below alpha. Nothing accepted proves nothing."""
    if accepted == 0:
        return 1.0
    return binom_cdf(wrong, accepted, alpha)


def clopper_pearson_upper(wrong: int, n: int, confidence: float = 0.95) -> float:
    """The one-sided upper Clopper-Pearson bound on an error rate seen as wrong/n."""
    if n == 0:
        return 1.0
    if wrong >= n:
        return 1.0
    low, high = wrong / n, 1.0
    for _ in range(60):  # bisection: binom_cdf falls as p grows
        middle = (low + high) / 2
        if binom_cdf(wrong, n, middle) > 1 - confidence:
            low = middle
        else:
            high = middle
    return high


class Counts:
    """Accepted and wrong counts of every candidate rule over a set of samples, in O(log n) per
    rule: the samples sorted by each signal, with running totals."""

    def __init__(self, samples: Sequence[Sample], signals: Sequence[str]) -> None:
        passed = [s for s in samples if s.passed_checks]
        self.total = len(samples)
        self.checks = (len(passed), sum(not s.correct for s in passed))
        self.by_signal: dict[str, tuple[list[float], list[int]]] = {}
        for signal in signals:
            values = sorted(
                ((s.signals[signal], not s.correct) for s in passed if signal in s.signals),
                key=lambda pair: pair[0],
            )
            keys = [value for value, _ in values]
            wrong_from = [0] * (len(values) + 1)  # errors among values[i:]
            for i in range(len(values) - 1, -1, -1):
                wrong_from[i] = wrong_from[i + 1] + values[i][1]
            self.by_signal[signal] = (keys, wrong_from)

    def of(self, rule: Rule) -> tuple[int, int]:
        if rule.signal == CHECKS_ONLY:
            return self.checks
        keys, wrong_from = self.by_signal.get(rule.signal, ([], [0]))
        start = bisect.bisect_left(keys, rule.threshold)
        return len(keys) - start, wrong_from[start]


def candidates(signals: Sequence[str]) -> list[Rule]:
    return [Rule(CHECKS_ONLY)] + [Rule(s, t) for s in signals for t in GRID]


def calibrate(
    samples: Sequence[Sample],
    alpha: float,
    delta: float,
    *,
    signals: Sequence[str] | None = None,
    order_share: float = 0.3,
    seed: int = 0,
) -> Calibrated:
    """The rule that accepts the most answers among those proven to keep the error rate of
    accepted answers <= alpha with probability >= 1 - delta (see the module docstring)."""
    if not 0 < alpha < 1 or not 0 < delta < 1:
        raise ValueError(f"alpha and delta must be between 0 and 1, got {alpha} and {delta}")
    names = sorted(signals if signals is not None else {k for s in samples for k in s.signals})
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * order_share)
    ordering, testing = Counts(shuffled[:cut], names), Counts(shuffled[cut:], names)
    everything = Counts(shuffled, names)
    families = [[Rule(CHECKS_ONLY)]] + [
        _sequence(ordering, testing.total, s, alpha, delta / (len(names) + 1)) for s in names
    ]
    level = delta / len(families)  # Bonferroni across the families
    proven: list[tuple[Rule, float]] = []
    for family in families:
        for rule in family:  # fixed sequence within a family: stop at the first failure
            accepted, wrong = testing.of(rule)
            found = p_value(wrong, accepted, alpha)
            if found > level:
                break
            proven.append((rule, found))
    if not proven:
        return Calibrated(alpha, delta, None, len(samples), testing.total, 0, 0, None, 0)
    rule, found = max(proven, key=lambda pair: (everything.of(pair[0])[0], pair[0].threshold))
    accepted, wrong = everything.of(rule)
    return Calibrated(
        alpha, delta, rule, len(samples), testing.total, accepted, wrong, found, len(proven)
    )


def _sequence(ordering: Counts, tested: int, signal: str, alpha: float, level: float) -> list[Rule]:
    """One signal's thresholds in testing order: strictest first (error falls as the threshold
    rises), starting at the strictest one the ordering split expects the test to prove (its
    errors counted one higher, so a lucky run of right answers on few items does not start the
    sequence where the test cannot pass); then ever looser."""
    scale = tested / ordering.total if ordering.total else 0.0
    descending = [Rule(signal, t) for t in reversed(GRID)]
    for index, rule in enumerate(descending):
        accepted, wrong = ordering.of(rule)
        estimate = p_value(round((wrong + 1) * scale), round(accepted * scale), alpha)
        if accepted and estimate <= 2 * level:  # a start, not a test: any order is valid
            return descending[index:]
    return []
