"""Audit sampling and the quality interval: pure functions, figures worked out by hand."""

from __future__ import annotations

import pytest

from routing.audit import Audit, audited, matches_expected, same_answer, wilson_interval
from routing.checks import ConsensusCheck, LabelCheck


def test_the_sample_is_reproducible_and_its_size_follows_the_rate() -> None:
    ids = [f"item-{n}" for n in range(20_000)]
    two_percent = Audit(rate=0.02, seed=7)
    first = [i for i in ids if audited(two_percent, i)]
    assert first == [i for i in ids if audited(Audit(rate=0.02, seed=7), i)]
    # 400 expected; the binomial standard deviation is sqrt(20000 x 0.02 x 0.98) = 19.8
    assert abs(len(first) - 400) < 4 * 19.8
    other = [i for i in ids if audited(Audit(rate=0.02, seed=8), i)]
    assert other != first  # another seed, another sample
    assert all(audited(Audit(rate=1.0), i) for i in ids[:100])


@pytest.mark.parametrize(
    ("right", "sampled", "low", "high"),
    [
        # p = 0.8, z^2/n = 0.38416: centre 0.99208 / 1.38416 = 0.71673,
        # half 1.96 x sqrt(0.016 + 0.0009604) ... = 0.22658
        (8, 10, 0.4902, 0.9433),
        # p = 0.75, n = 4: centre 1.2302 / 1.9604 = 0.62753, half 0.32689
        (3, 4, 0.3006, 0.9544),
        (0, 5, 0.0, 0.4345),  # all wrong: the interval still reaches up
        (5, 5, 0.5655, 1.0),
    ],
)
def test_the_wilson_interval_matches_the_formula(
    right: int, sampled: int, low: float, high: float
) -> None:
    assert wilson_interval(right, sampled) == pytest.approx((low, high), abs=1e-4)


def test_answers_are_compared_the_way_the_task_compares_them() -> None:
    labels = [LabelCheck(labels=["billing", "refund"])]
    assert same_answer(labels, "Billing.", "billing")
    assert not same_answer(labels, "billing", "refund")
    assert not same_answer([], "", "")  # nothing agrees with nothing
    exact = [ConsensusCheck(k=2, m=2, normalize="exact")]
    assert not same_answer(exact, "Billing", "billing")
    assert matches_expected("Refund!", "refund") and not matches_expected(None, "refund")
