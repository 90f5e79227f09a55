"""A rung of a task type's ladder: its tier, and what it takes for an answer to be accepted there.

A ladder entry is a tier name (the rung accepts with the task type's checks) or a mapping:

    ladder:
      - tier: cheap
        accept:
          checks: [{kind: consensus, deployments: [mini, haiku], m: 2}]   # replace the defaults
      - tier: premium
        accept: {best_effort: true}   # the last rung's answer is the final word

`checks` replaces the task type's checks on the rung; `add` runs more after them; `drop` leaves
some out by kind; `best_effort` (last rung only) accepts the rung's answer whatever its checks
say, recording their verdicts. Answers already bought for an item on earlier rungs are votes a
consensus check on a later rung counts (docs/routing.md, "Votes that carry").
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from routing.checks import CheckSpec
from routing.schema import StrictModel


class Acceptance(StrictModel):
    """What a rung accepts: the task type's checks, changed as these settings say."""

    checks: list[CheckSpec] | None = None  # replaces the task type's checks on this rung
    add: list[CheckSpec] = Field(default_factory=list)  # run after the task type's checks
    drop: list[str] = Field(default_factory=list)  # kinds of the task type's checks to leave out
    best_effort: bool = False  # accept the answer whatever the checks say (last rung only)

    @model_validator(mode="after")
    def _replace_or_change(self) -> Acceptance:
        if self.checks is not None and (self.add or self.drop):
            raise ValueError("give `checks` (replacing the task type's) or `add`/`drop`, not both")
        return self


class Rung(StrictModel):
    tier: str
    accept: Acceptance = Field(default_factory=Acceptance)

    @model_validator(mode="before")
    @classmethod
    def _from_tier_name(cls, value: Any) -> Any:
        return {"tier": value} if isinstance(value, str) else value

    def checks(self, defaults: list[Any]) -> list[Any]:
        """The checks an answer must pass on this rung, given the task type's."""
        if self.accept.checks is not None:
            return list(self.accept.checks)
        kept = [check for check in defaults if check.kind not in self.accept.drop]
        return kept + list(self.accept.add)
