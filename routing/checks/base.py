"""What every check shares: the verdict it returns, what it is given, and its pydantic base."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


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


@dataclass(frozen=True)
class CheckInput:
    """Everything a check may look at for one output.

    `logprobs` are the output's token logprobs and `label_logprobs` a label -> logprob map, when
    the provider returned them; `samples` are all the answers collected for a consensus check;
    `fields` are the item's other input fields (for templated check settings).
    """

    output: str
    source: str
    logprobs: Sequence[float] | None = None
    label_logprobs: Mapping[str, float] | None = None
    samples: Sequence[str] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


class CheckBase(BaseModel):
    """A check's settings, as written in the routing file; `run` judges one output.

    Unknown keys are errors, so a misspelt setting fails at load instead of being ignored.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str

    def verdict_name(self) -> str:
        """How verdicts and reasons name this check."""
        return self.kind

    def run(self, given: CheckInput) -> Verdict:  # pragma: no cover - every check overrides
        raise NotImplementedError


_PUNCTUATION_TO_SPACE = {ord(c): " " for c in string.punctuation if c not in "_-"}


def normalize_label(text: str) -> str:
    """Lower case, punctuation dropped, runs of spaces, dashes and underscores as one underscore."""
    text = text.strip().lower()
    text = text.translate(_PUNCTUATION_TO_SPACE)
    return re.sub(r"[\s_\-]+", "_", text).strip("_")


def shorten(text: str, limit: int = 60) -> str:
    """One line of at most `limit` characters, for reasons."""
    flat = text.strip().replace("\n", " ")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


_FENCE = re.compile(r"```[ \t]*([\w+#.\-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_fenced(text: str, languages: tuple[str, ...] = ()) -> str:
    """The body of the first ``` block tagged with one of `languages` (else the first block).

    Text without any fence is returned stripped; an unclosed fence (a truncated answer) runs to
    the end of the text.
    """
    blocks = _FENCE.findall(text)
    if not blocks:
        return text.strip()
    for language, body in blocks:
        if language.lower() in languages:
            return str(body).strip()
    return str(blocks[0][1]).strip()
