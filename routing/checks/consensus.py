"""Consensus: ask k deployments (or take k samples) and accept when m answers agree.

The routing core only declares the check and counts votes; the worker makes the extra calls.
How the worker uses it: collect the k answers, call `agreement(answers, spec.normalizer)` to
pick the winner, then `judge(checks, winner, source, samples=answers)`, so the other checks
judge the winning answer and this check counts the votes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import Field, model_validator

from routing.checks.base import CheckBase, CheckInput, Verdict, normalize_label, shorten

Normalizer = Callable[[str], str]


def _text(value: str) -> str:
    return " ".join(value.lower().split())


def _json(value: str) -> str:
    try:
        return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
    except (json.JSONDecodeError, TypeError):
        return _text(value)


NORMALIZERS: dict[str, Normalizer] = {
    "label": normalize_label,  # case, spaces and punctuation ignored: "Card arrival." == card_arrival
    "text": _text,  # case and runs of whitespace ignored
    "exact": str.strip,
    "json": _json,  # the same JSON value, whatever the key order and spacing
}


def agreement(outputs: Sequence[str], normalize: Normalizer | str = "label") -> tuple[str, int]:
    """The most common answer after normalising, and how many answers gave it.

    The winner is returned as the first answer (stripped) that normalised to the winning form;
    ties go to the form seen first. Answers that normalise to nothing (empty) never vote; with no
    votes at all the result is ("", 0).
    """
    norm = NORMALIZERS[normalize] if isinstance(normalize, str) else normalize
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for output in outputs:
        key = norm(output)
        if not key:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, output.strip())
    if not counts:
        return "", 0
    best = max(counts, key=lambda key: counts[key])  # max keeps the first of equal counts
    return first[best], counts[best]


class ConsensusCheck(CheckBase):
    """Accept when at least `m` of the answers agree after normalising.

    Either `k` (k samples of the same deployment, the first answer included) or `deployments`
    (one answer from each named deployment).
    """

    kind: Literal["consensus"] = "consensus"
    k: int | None = Field(default=None, ge=2, le=20)
    deployments: list[str] | None = Field(default=None, min_length=2)
    m: int = Field(ge=1)
    normalize: Literal["label", "text", "exact", "json"] = "label"

    @model_validator(mode="after")
    def _sizes(self) -> ConsensusCheck:
        if (self.k is None) == (self.deployments is None):
            raise ValueError("give exactly one of k (samples) or deployments (one answer each)")
        if self.m > self.answers:
            raise ValueError(f"m ({self.m}) cannot exceed the number of answers ({self.answers})")
        return self

    @property
    def answers(self) -> int:
        return self.k if self.k is not None else len(self.deployments or [])

    @property
    def normalizer(self) -> Normalizer:
        return NORMALIZERS[self.normalize]

    def run(self, given: CheckInput) -> Verdict:
        if not given.samples:
            return Verdict(
                self.kind,
                False,
                f"consensus needs {self.answers} answers; none were collected for this attempt",
                0.0,
            )
        winner, count = agreement(given.samples, self.normalizer)
        total = len(given.samples)
        reason = f"{count} of {total} answers agree on {shorten(winner, 40)!r} (need {self.m})"
        return Verdict(self.kind, count >= self.m, reason, count / total)
