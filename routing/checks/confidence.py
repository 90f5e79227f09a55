"""Confidence from token logprobs: mean or minimum token logprob, or the chosen label's probability.

Logprobs are a weak signal on their own (sequence logprob is length-biased: Gupta et
al., ICLR 2024) and many providers (Anthropic, some compatible servers) return none: layer this
after the format checks, and say what to do when they are missing.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from routing.checks.base import CheckBase, CheckInput, Verdict, normalize_label

NO_LOGPROBS = "provider returned no logprobs"


class LogprobCheck(CheckBase):
    """Passes when the confidence measure reaches the threshold.

    measure: `mean` (mean token logprob), `min` (least likely token), `label` (the chosen
    label's probability: from the provider's label -> logprob map when given, else the joint
    probability of the answer's tokens). Threshold: `min_prob` (0-1, compared with exp of the
    measure) or `min_logprob` (<= 0). `missing: pass` accepts outputs without logprobs.
    """

    kind: Literal["logprob"] = "logprob"
    measure: Literal["mean", "min", "label"] = "mean"
    min_prob: float | None = Field(default=None, gt=0, le=1)
    min_logprob: float | None = Field(default=None, le=0)
    missing: Literal["fail", "pass"] = "fail"

    @model_validator(mode="after")
    def _one_threshold(self) -> LogprobCheck:
        if (self.min_prob is None) == (self.min_logprob is None):
            raise ValueError("give exactly one threshold: min_prob (0-1) or min_logprob (<= 0)")
        return self

    def run(self, given: CheckInput) -> Verdict:
        found = self._measure(given)
        if found is None:
            if self.missing == "pass":
                return Verdict(self.kind, True, f"{NO_LOGPROBS} (missing: pass)", 0.5)
            return Verdict(self.kind, False, NO_LOGPROBS, 0.0)
        if isinstance(found, str):  # the chosen label has no entry in the provider's map
            return Verdict(self.kind, False, found, 0.0)
        logprob, what = found
        prob = math.exp(min(logprob, 0.0))
        if self.min_logprob is not None:
            passed = logprob >= self.min_logprob
            bound = f"{'>=' if passed else '<'} {self.min_logprob:g}"
        else:
            threshold = self.min_prob or 0.0
            passed = prob >= threshold
            bound = f"{'>=' if passed else '<'} p {threshold:g}"
        return Verdict(self.kind, passed, f"{what} {logprob:.3f} (p={prob:.3f}) {bound}", prob)

    def _measure(self, given: CheckInput) -> tuple[float, str] | str | None:
        """(logprob, what it is), a reason it cannot be measured, or None without logprobs."""
        tokens = [float(x) for x in given.logprobs] if given.logprobs else []
        if self.measure == "label":
            if given.label_logprobs:
                chosen = normalize_label(given.output)
                for label, logprob in given.label_logprobs.items():
                    if normalize_label(label) == chosen:
                        return float(logprob), f"label {label!r} logprob"
                return f"the chosen label {chosen!r} has no logprob"
            if tokens:
                return sum(tokens), "answer logprob"
            return None
        if not tokens:
            return None
        if self.measure == "min":
            return min(tokens), "min token logprob"
        return sum(tokens) / len(tokens), "mean token logprob"
