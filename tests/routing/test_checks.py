"""Quality checks decide what is escalated: each verdict must be right on plain examples."""

from __future__ import annotations

import pytest

from routing.checks import (
    LabelCheck,
    LengthCheck,
    NonEmptyCheck,
    judge,
    normalize_label,
)

LABELS = LabelCheck(labels=["refund_request", "billing"], synonyms={"refund": "refund_request"})


@pytest.mark.parametrize(
    ("output", "passed", "kept"),
    [
        ("refund_request", True, "refund_request"),
        ("  Refund Request. ", True, "refund_request"),
        ("REFUND-REQUEST", True, "refund_request"),
        ("refund", True, "refund_request"),
        ("Billing!", True, "billing"),
        ("I think it is billing", False, None),
        ("shipping_delay", False, None),
        ("", False, None),
    ],
)
def test_label_check(output: str, passed: bool, kept: str | None) -> None:
    judgement = judge([NonEmptyCheck(), LABELS], output, "ticket")
    assert judgement.passed is passed
    if kept is not None:
        assert judgement.output == kept
    else:
        assert judgement.reason != "all checks passed"


def test_synonyms_must_point_at_labels() -> None:
    with pytest.raises(ValueError, match="not a label"):
        LabelCheck(labels=["a"], synonyms={"x": "b"})


@pytest.mark.parametrize(
    ("output", "passed", "reason"),
    [
        ("", False, "empty output"),
        ("   \n", False, "empty output"),
        ("I'm sorry, but I can't help with that request.", False, "refusal"),
        ("As an AI, I cannot do that.", False, "refusal"),
        ("The meeting agreed to ship on Friday.", True, "non-empty"),
    ],
)
def test_non_empty_rejects_blank_and_refusals(output: str, passed: bool, reason: str) -> None:
    judgement = judge([NonEmptyCheck()], output, "source")
    assert judgement.passed is passed
    assert reason in judgement.verdicts[0].reason


def test_length_bounds_in_words_and_as_ratio_of_input() -> None:
    source = " ".join(["word"] * 100)
    spec = LengthCheck(unit="words", min=3, max=40, max_ratio_of_input=0.3)
    assert judge([spec], "too short", source).passed is False
    assert judge([spec], " ".join(["w"] * 20), source).passed is True
    assert judge([spec], " ".join(["w"] * 35), source).passed is False  # over 0.3 x 100 words
    assert judge([spec], " ".join(["w"] * 45), source).passed is False
    chars = LengthCheck(unit="chars", max=10)
    assert judge([chars], "0123456789", source).passed is True
    assert judge([chars], "0123456789x", source).passed is False


def test_length_bounds_must_make_sense() -> None:
    with pytest.raises(ValueError, match="greater than max"):
        LengthCheck(min=10, max=5)
    with pytest.raises(ValueError, match="at least one"):
        LengthCheck()


def test_all_checks_must_pass_and_every_verdict_is_kept() -> None:
    judgement = judge([NonEmptyCheck(), LABELS, LengthCheck(max=5)], "billing", "src")
    assert not judgement.passed
    assert [v.passed for v in judgement.verdicts] == [True, True, False]
    assert judgement.reason.startswith("length:")


def test_normalize_label() -> None:
    assert normalize_label("  Card -- Arrival?! ") == "card_arrival"
    assert normalize_label("card_arrival") == "card_arrival"
