"""Quality checks: each takes an output and says pass or fail, with a reason and a score.

A task type lists its checks in the routing file; all must pass. Checks are pure functions over
plain data, so the worker, replay and evaluation all judge an output the same way.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

REFUSAL_PATTERNS = (
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i'm sorry, but",
    "i am sorry, but",
    "as an ai",
    "i'm unable to",
    "i am unable to",
)


class NonEmptyCheck(BaseModel):
    """The output has visible text and is not a refusal."""

    kind: Literal["non_empty"] = "non_empty"
    reject_refusals: bool = True


class LabelCheck(BaseModel):
    """The output is one label of a fixed set, after normalising case, spaces and punctuation."""

    kind: Literal["label"] = "label"
    labels: list[str] = Field(min_length=1)
    synonyms: dict[str, str] = Field(default_factory=dict)  # other spelling -> label

    @model_validator(mode="after")
    def _synonyms_point_at_labels(self) -> LabelCheck:
        for alias, label in self.synonyms.items():
            if label not in self.labels:
                raise ValueError(f"synonym {alias!r} points at {label!r}, which is not a label")
        return self


class LengthCheck(BaseModel):
    """The output's length lies within bounds, in characters or words, or as a share of the input."""

    kind: Literal["length"] = "length"
    unit: Literal["chars", "words"] = "chars"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)
    max_ratio_of_input: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> LengthCheck:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.min is None and self.max is None and self.max_ratio_of_input is None:
            raise ValueError("give at least one of min, max, max_ratio_of_input")
        return self


CheckSpec = Annotated[NonEmptyCheck | LabelCheck | LengthCheck, Field(discriminator="kind")]


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    reason: str
    score: float  # 1.0 = certainly fine, 0.0 = certainly not
    normalized: str | None = None  # the canonical form of the output, when the check makes one


@dataclass(frozen=True)
class Judgement:
    """All verdicts on one output; `output` is the text to keep (normalised when a check made it)."""

    passed: bool
    verdicts: tuple[Verdict, ...]
    output: str

    @property
    def reason(self) -> str:
        failed = [f"{v.check}: {v.reason}" for v in self.verdicts if not v.passed]
        return "; ".join(failed) if failed else "all checks passed"


_PUNCTUATION_TO_SPACE = {ord(c): " " for c in string.punctuation if c not in "_-"}


def normalize_label(text: str) -> str:
    """Lower case, punctuation dropped, runs of spaces, dashes and underscores as one underscore."""
    text = text.strip().lower()
    text = text.translate(_PUNCTUATION_TO_SPACE)
    return re.sub(r"[\s_\-]+", "_", text).strip("_")


def check_non_empty(spec: NonEmptyCheck, output: str, source: str) -> Verdict:
    if not output.strip():
        return Verdict(spec.kind, False, "empty output", 0.0)
    if spec.reject_refusals:
        lowered = output.strip().lower()
        for pattern in REFUSAL_PATTERNS:
            if lowered.startswith(pattern) or (len(lowered) < 200 and pattern in lowered):
                return Verdict(spec.kind, False, f"refusal ({pattern!r})", 0.0)
    return Verdict(spec.kind, True, "non-empty", 1.0)


def check_label(spec: LabelCheck, output: str, source: str) -> Verdict:
    wanted = normalize_label(output)
    canonical = {normalize_label(label): label for label in spec.labels}
    canonical.update({normalize_label(alias): label for alias, label in spec.synonyms.items()})
    if wanted in canonical:
        return Verdict(spec.kind, True, "label in set", 1.0, normalized=canonical[wanted])
    shown = output.strip().replace("\n", " ")
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return Verdict(spec.kind, False, f"{shown!r} is not one of the {len(spec.labels)} labels", 0.0)


def check_length(spec: LengthCheck, output: str, source: str) -> Verdict:
    def measure(text: str) -> int:
        return len(text.split()) if spec.unit == "words" else len(text.strip())

    size = measure(output)
    if spec.min is not None and size < spec.min:
        return Verdict(spec.kind, False, f"{size} {spec.unit} < min {spec.min}", 0.0)
    if spec.max is not None and size > spec.max:
        return Verdict(spec.kind, False, f"{size} {spec.unit} > max {spec.max}", 0.0)
    if spec.max_ratio_of_input is not None:
        limit = spec.max_ratio_of_input * max(measure(source), 1)
        if size > limit:
            return Verdict(
                spec.kind,
                False,
                f"{size} {spec.unit} > {spec.max_ratio_of_input:g} x input ({limit:.0f})",
                0.0,
            )
    return Verdict(spec.kind, True, f"{size} {spec.unit} within bounds", 1.0)


_RUNNERS = {"non_empty": check_non_empty, "label": check_label, "length": check_length}
CHECK_KINDS = frozenset(_RUNNERS)


def judge(checks: list[CheckSpec], output: str, source: str) -> Judgement:
    """Run every check on `output` (the model's answer to `source`). A check that raises fails."""
    verdicts: list[Verdict] = []
    kept = output.strip()
    for spec in checks:
        try:
            verdict = _RUNNERS[spec.kind](spec, output, source)  # type: ignore[operator]
        except Exception as exc:  # a check must never kill the worker
            verdict = Verdict(spec.kind, False, f"check raised {type(exc).__name__}: {exc}", 0.0)
        verdicts.append(verdict)
        if verdict.normalized is not None:
            kept = verdict.normalized
    return Judgement(all(v.passed for v in verdicts), tuple(verdicts), kept)
