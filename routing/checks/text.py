"""Checks on the shape of plain text: non-empty, a label of a set, a length, a regex."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from routing.checks.base import (
    CheckBase,
    CheckInput,
    Verdict,
    normalize_label,
    shorten,
)

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


class NonEmptyCheck(CheckBase):
    """The output has visible text and is not a refusal."""

    kind: Literal["non_empty"] = "non_empty"
    reject_refusals: bool = True

    def run(self, given: CheckInput) -> Verdict:
        output = given.output
        if not output.strip():
            return Verdict(self.kind, False, "empty output", 0.0)
        if self.reject_refusals:
            lowered = output.strip().lower()
            for pattern in REFUSAL_PATTERNS:
                if lowered.startswith(pattern) or (len(lowered) < 200 and pattern in lowered):
                    return Verdict(self.kind, False, f"refusal ({pattern!r})", 0.0)
        return Verdict(self.kind, True, "non-empty", 1.0)


class LabelCheck(CheckBase):
    """The output is one label of a fixed set, after normalising case, spaces and punctuation."""

    kind: Literal["label"] = "label"
    labels: list[str] = Field(min_length=1)
    synonyms: dict[str, str] = Field(default_factory=dict)  # other spelling -> label
    _canonical: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _synonyms_point_at_labels(self) -> LabelCheck:
        for alias, label in self.synonyms.items():
            if label not in self.labels:
                raise ValueError(f"synonym {alias!r} points at {label!r}, which is not a label")
        canonical = {normalize_label(label): label for label in self.labels}
        canonical.update({normalize_label(alias): label for alias, label in self.synonyms.items()})
        self._canonical = canonical
        return self

    def run(self, given: CheckInput) -> Verdict:
        wanted = normalize_label(given.output)
        if wanted in self._canonical:
            return Verdict(self.kind, True, "label in set", 1.0, normalized=self._canonical[wanted])
        return Verdict(
            self.kind,
            False,
            f"{shorten(given.output)!r} is not one of the {len(self.labels)} labels",
            0.0,
        )


class LengthCheck(CheckBase):
    """The output's length lies within bounds, in characters, words or tokens, or as a share of
    the input's length in the same unit (summaries)."""

    kind: Literal["length"] = "length"
    unit: Literal["chars", "words", "tokens"] = "chars"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)
    max_ratio_of_input: float | None = Field(default=None, gt=0)
    # unit: tokens counts with this model's tokenizer (exact for OpenAI models, else an estimate)
    tokenizer_model: str = "gpt-4o"

    @model_validator(mode="after")
    def _bounds(self) -> LengthCheck:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.min is None and self.max is None and self.max_ratio_of_input is None:
            raise ValueError("give at least one of min, max, max_ratio_of_input")
        return self

    def measure(self, text: str) -> int:
        if self.unit == "words":
            return len(text.split())
        if self.unit == "tokens":
            from routing.tokens import count_text_tokens

            return count_text_tokens(text.strip(), self.tokenizer_model) if text.strip() else 0
        return len(text.strip())

    def run(self, given: CheckInput) -> Verdict:
        size = self.measure(given.output)
        unit = self.unit
        if self.min is not None and size < self.min:
            return Verdict(self.kind, False, f"{size} {unit} < min {self.min}", 0.0)
        if self.max is not None and size > self.max:
            return Verdict(self.kind, False, f"{size} {unit} > max {self.max}", 0.0)
        if self.max_ratio_of_input is not None:
            limit = self.max_ratio_of_input * max(self.measure(given.source), 1)
            if size > limit:
                return Verdict(
                    self.kind,
                    False,
                    f"{size} {unit} > {self.max_ratio_of_input:g} x input ({limit:.0f})",
                    0.0,
                )
        return Verdict(self.kind, True, f"{size} {unit} within bounds", 1.0)


_FLAGS = {
    "ignorecase": re.IGNORECASE,
    "multiline": re.MULTILINE,
    "dotall": re.DOTALL,
    "verbose": re.VERBOSE,
}


class RegexCheck(CheckBase):
    """The output matches a regular expression (or, with `invert`, does not).

    `match: search` finds the pattern anywhere, `match: full` needs the whole (stripped) output
    to match. `keep` names a group whose text becomes the output kept (e.g. the number after
    `#### ` in a worked answer).
    """

    kind: Literal["regex"] = "regex"
    pattern: str = Field(min_length=1)
    match: Literal["search", "full"] = "search"
    flags: list[Literal["ignorecase", "multiline", "dotall", "verbose"]] = Field(
        default_factory=list
    )
    invert: bool = False
    keep: int | str | None = None
    _compiled: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _compile(self) -> RegexCheck:
        flags = 0
        for name in self.flags:
            flags |= _FLAGS[name]
        compiled = re.compile(self.pattern, flags)
        if self.keep is not None:
            if self.invert:
                raise ValueError("keep cannot be used with invert (nothing matched to keep)")
            known = isinstance(self.keep, int) and 0 <= self.keep <= compiled.groups
            known = known or (isinstance(self.keep, str) and self.keep in compiled.groupindex)
            if not known:
                raise ValueError(f"keep: the pattern has no group {self.keep!r}")
        self._compiled = compiled
        return self

    def run(self, given: CheckInput) -> Verdict:
        compiled = self._compiled or re.compile(self.pattern)
        text = given.output.strip()
        found = compiled.fullmatch(text) if self.match == "full" else compiled.search(text)
        how = "fully match" if self.match == "full" else "match"
        if self.invert:
            if found:
                return Verdict(
                    self.kind, False, f"matches the forbidden pattern ({found.group(0)!r})", 0.0
                )
            return Verdict(self.kind, True, "does not match the forbidden pattern", 1.0)
        if not found:
            return Verdict(
                self.kind, False, f"{shorten(text)!r} does not {how} /{self.pattern}/", 0.0
            )
        kept = None
        if self.keep is not None:
            group = found.group(self.keep)
            kept = group.strip() if group is not None else None
        return Verdict(self.kind, True, f"does {how} /{self.pattern}/", 1.0, normalized=kept)
