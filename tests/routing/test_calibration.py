"""Calibrated acceptance: the stated error bound holds on data it never saw, at the stated rate.

A synthetic rung whose truth is known: a signal s uniform on [0, 1], an answer that passes the
checks 90% of the time, and an answer that is wrong with probability 0.45 (1 - s)^2. So the
share of wrong answers among those accepted at s >= t is 0.15 (1 - t)^2: 0.15 with no
threshold, and alpha = 0.05 needs t >= 0.423 (which accepts 0.9 x 57.7% = 52% of answers).
"""

from __future__ import annotations

import random

import pytest

from routing.learned.calibration import (
    CHECKS_ONLY,
    GRID,
    Counts,
    Rule,
    Sample,
    binom_cdf,
    calibrate,
    clopper_pearson_upper,
    p_value,
)

ALPHA, DELTA = 0.05, 0.1


def population(size: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for _ in range(size):
        s = rng.random()
        out.append(
            Sample(rng.random() < 0.9, rng.random() >= 0.45 * (1 - s) ** 2, {"confidence": s})
        )
    return out


def error_rate(rule: Rule, samples: list[Sample]) -> float:
    accepted = [s for s in samples if rule.accepts(s)]
    return sum(not s.correct for s in accepted) / len(accepted) if accepted else 0.0


def held_out_error(rule: Rule, everything: Counts, calibration: Counts) -> float:
    """The error among accepted held-out items: all items' counts less the calibration's."""
    accepted, wrong = (
        a - b for a, b in zip(everything.of(rule), calibration.of(rule), strict=True)
    )
    return wrong / accepted if accepted else 0.0


def naive_rule(calibration: Counts) -> Rule:
    """What tuning on the validation set does: the loosest threshold whose error there is <=
    alpha. Used to show that the test below can fail."""
    for threshold in GRID:
        accepted, wrong = calibration.of(Rule("confidence", threshold))
        if accepted and wrong / accepted <= ALPHA:
            return Rule("confidence", threshold)
    return Rule("confidence", 1.0)


def test_binomial_tail_and_clopper_pearson_match_hand_worked_values() -> None:
    assert binom_cdf(0, 10, 0.1) == pytest.approx(0.9**10)
    assert binom_cdf(1, 3, 0.5) == pytest.approx(0.5)
    # 0 errors in 148 answers proves 2% at 95%: 0.98^148 = 0.0503, 0.98^149 = 0.0493.
    assert p_value(0, 148, 0.02) > 0.05 > p_value(0, 149, 0.02)
    # The rule of three: 0 of n wrong gives an upper bound near 3/n.
    assert clopper_pearson_upper(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-6)
    assert clopper_pearson_upper(5, 100) == pytest.approx(0.1023, abs=5e-4)


def test_the_bound_holds_on_held_out_items_at_the_stated_rate() -> None:
    """200 random splits of 12,000 items: calibrate on 1,500, measure on the rest. The share
    of accepted held-out answers that are wrong exceeds alpha in at most ~delta of the splits
    (here far fewer: the method is conservative), while the naive threshold fails about half
    the time."""
    items = population(12_000, seed=7)
    everything = Counts(items, ["confidence"])
    rng = random.Random(11)
    trials, over, naive_over, accepted = 200, 0, 0, []
    for trial in range(trials):
        calibration = rng.sample(items, 1_500)
        counts = Counts(calibration, ["confidence"])
        fitted = calibrate(calibration, ALPHA, DELTA, seed=trial)
        accepted.append(fitted.acceptance)  # no rule proven: accepts nothing, breaks nothing
        if fitted.rule is not None:
            over += held_out_error(fitted.rule, everything, counts) > ALPHA
        naive_over += held_out_error(naive_rule(counts), everything, counts) > ALPHA
    # Bin(200, 0.1) exceeds 31 with probability < 1%: a slack for the test's own chance.
    print(
        f"exceeded alpha: fitted {over}, naive {naive_over} of {trials}; accepted {sum(accepted) / trials:.3f}"
    )
    assert over <= 31, f"bound broken in {over} of {trials} splits"
    assert naive_over >= 60, f"the naive rule broke it in only {naive_over} splits"
    # And the rule is useful: the best possible accepts 52%.
    assert sum(accepted) / trials > 0.3


def test_checks_alone_are_chosen_when_they_already_meet_the_bound() -> None:
    rng = random.Random(3)
    samples = [
        Sample(True, rng.random() > 0.005, {"confidence": rng.random()}) for _ in range(2000)
    ]
    fitted = calibrate(samples, 0.02, 0.05)
    assert fitted.rule == Rule(CHECKS_ONLY)
    assert fitted.accepted == 2000


def test_a_rung_that_is_too_often_wrong_accepts_nothing() -> None:
    rng = random.Random(5)
    samples = [Sample(True, rng.random() > 0.5, {"confidence": rng.random()}) for _ in range(500)]
    fitted = calibrate(samples, 0.02, 0.05)
    assert fitted.rule is None and fitted.accepted == 0


def test_answers_without_the_signal_are_not_accepted_by_a_threshold_on_it() -> None:
    rule = Rule("logprob", 0.5)
    assert not rule.accepts(Sample(True, True, {}))
    assert not rule.accepts(Sample(False, True, {"logprob": 0.9}))
    assert rule.accepts(Sample(True, True, {"logprob": 0.5}))
