"""Token-length, logprob, consensus and custom checks, and how judge() survives a raising check."""

from __future__ import annotations

import math

import pytest

from routing.checks import (
    NO_LOGPROBS,
    ConsensusCheck,
    CustomCheck,
    LabelCheck,
    LengthCheck,
    LogprobCheck,
    agreement,
    judge,
    normalize_label,
)
from routing.tokens import count_text_tokens

# Every routing file here may name the test fixtures as custom checks and models (the host
# allow-list, routing/checks/imports.py); tests/routing/test_allowlist.py runs without it.
pytestmark = pytest.mark.usefixtures("allow_checkfixtures")


def test_length_in_tokens() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    tokens = count_text_tokens(text, "gpt-4o")
    assert tokens == 10
    assert judge([LengthCheck(unit="tokens", max=tokens)], text, "").passed
    failed = judge([LengthCheck(unit="tokens", max=tokens - 1)], text, "")
    assert not failed.passed and f"{tokens} tokens > max {tokens - 1}" in failed.reason
    source = " ".join(["word"] * 100)
    ratio = LengthCheck(unit="tokens", max_ratio_of_input=0.05)
    assert not judge([ratio], text, source).passed  # 10 tokens > 0.05 x 100
    assert judge([LengthCheck(unit="tokens", max_ratio_of_input=0.2)], text, source).passed


def lp(*probs: float) -> list[float]:
    return [math.log(p) for p in probs]


@pytest.mark.parametrize(
    ("spec", "logprobs", "passed"),
    [
        ({"measure": "mean", "min_prob": 0.8}, lp(0.9, 0.9, 0.9), True),
        ({"measure": "mean", "min_prob": 0.8}, lp(0.9, 0.5), False),
        ({"measure": "min", "min_prob": 0.6}, lp(0.99, 0.99, 0.5), False),
        ({"measure": "min", "min_prob": 0.4}, lp(0.99, 0.99, 0.5), True),
        ({"measure": "mean", "min_logprob": -0.2}, [-0.1, -0.2], True),
        ({"measure": "mean", "min_logprob": -0.2}, [-0.1, -0.5], False),
        ({"measure": "label", "min_prob": 0.7}, lp(0.9, 0.9), True),  # joint 0.81
        ({"measure": "label", "min_prob": 0.85}, lp(0.9, 0.9), False),
    ],
)
def test_logprob_thresholds(spec: dict, logprobs: list[float], passed: bool) -> None:
    judgement = judge([LogprobCheck.model_validate(spec)], "billing", "", logprobs=logprobs)
    assert judgement.passed is passed, judgement.reason
    assert 0.0 <= judgement.verdicts[0].score <= 1.0


def test_logprob_of_the_chosen_label_from_the_providers_map() -> None:
    check = LogprobCheck(measure="label", min_prob=0.6)
    probs = {"Billing": math.log(0.7), "refund": math.log(0.2)}
    assert judge([check], " billing. ", "", label_logprobs=probs).passed
    low = judge([check], "refund", "", label_logprobs=probs)
    assert not low.passed and "p=0.200" in low.reason
    absent = judge([check], "shipping", "", label_logprobs=probs)
    assert not absent.passed and "has no logprob" in absent.reason


def test_missing_logprobs_fail_unless_the_check_says_pass() -> None:
    strict = judge([LogprobCheck(min_prob=0.5)], "billing", "", logprobs=None)
    assert not strict.passed and strict.verdicts[0].reason == NO_LOGPROBS
    assert not judge([LogprobCheck(min_prob=0.5)], "billing", "", logprobs=[]).passed
    lenient = judge([LogprobCheck(min_prob=0.5, missing="pass")], "billing", "")
    assert lenient.passed and "missing: pass" in lenient.verdicts[0].reason


def test_logprob_needs_exactly_one_threshold() -> None:
    with pytest.raises(ValueError, match="exactly one threshold"):
        LogprobCheck()
    with pytest.raises(ValueError, match="exactly one threshold"):
        LogprobCheck(min_prob=0.5, min_logprob=-1)


def test_agreement_counts_votes_after_normalising() -> None:
    assert agreement(["Billing", "billing.", "refund"], normalize_label) == ("Billing", 2)
    assert agreement(["a", "b", "b", "a"], "label") == ("a", 2)  # ties: the first form seen
    assert agreement(["", "  ", "x"], "label") == ("x", 1)  # empty answers do not vote
    assert agreement([], "label") == ("", 0)
    assert agreement(['{"a": 1, "b": 2}', '{"b":2,"a":1}', "{}"], "json")[1] == 2
    assert agreement(["The  Answer", "the answer"], "text") == ("The  Answer", 2)
    assert agreement(["X", "x"], "exact") == ("X", 1)


def test_consensus_spec_and_verdict() -> None:
    spec = ConsensusCheck(k=3, m=2)
    assert spec.answers == 3
    assert judge([spec], "billing", "", samples=["billing", "Billing", "refund"]).passed
    split = judge([spec], "billing", "", samples=["billing", "refund", "other"])
    assert not split.passed and "1 of 3 answers agree" in split.reason
    none = judge([spec], "billing", "")
    assert not none.passed and "none were collected" in none.reason
    assert ConsensusCheck(deployments=["a", "b", "c"], m=3).answers == 3
    with pytest.raises(ValueError, match="exactly one of k"):
        ConsensusCheck(m=2)
    with pytest.raises(ValueError, match="exactly one of k"):
        ConsensusCheck(k=3, deployments=["a", "b"], m=2)
    with pytest.raises(ValueError, match="cannot exceed"):
        ConsensusCheck(k=3, m=4)


@pytest.mark.parametrize(
    ("function", "options", "output", "passed", "reason", "score"),
    [
        (
            "tests.routing.checkfixtures:mentions",
            {},
            "A refund please",
            True,
            "mentions 'refund'",
            1,
        ),
        ("tests.routing.checkfixtures:mentions", {"word": "card"}, "refund", False, "not", 0),
        ("tests.routing.checkfixtures.scored", {}, "long", True, "long enough", 0.7),
        ("tests.routing.checkfixtures:as_verdict", {}, "x", True, "fine", 0.9),
        ("tests.routing.checkfixtures:just_bool", {}, "YES", True, "passed", 1),
        ("tests.routing.checkfixtures:just_bool", {}, "no", False, "failed", 0),
    ],
)
def test_custom_check(
    function: str, options: dict, output: str, passed: bool, reason: str, score: float
) -> None:
    judgement = judge([CustomCheck(function=function, options=options)], output, "src")
    [verdict] = judgement.verdicts
    assert (verdict.passed, verdict.score) == (passed, score)
    assert reason in verdict.reason


def test_a_raising_check_fails_with_the_exception_text_and_judge_does_not_raise() -> None:
    checks = [
        LabelCheck(labels=["billing"]),
        CustomCheck(function="tests.routing.checkfixtures:explodes", name="mine"),
    ]
    judgement = judge(checks, "billing", "src")
    assert not judgement.passed
    assert judgement.verdicts[0].passed
    assert judgement.verdicts[1].check == "mine"
    assert "check raised ZeroDivisionError: odd output: billing" in judgement.reason
    bad = judge([CustomCheck(function="tests.routing.checkfixtures:wrong_type")], "x", "")
    assert not bad.passed and "check raised TypeError" in bad.reason
