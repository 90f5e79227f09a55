"""The fitted router's score as an acceptance signal: accept when P(the cheap answer is right),
predicted from the item's text by `batchrouter fit`'s model, reaches `min_score`.

    add: [{kind: router_score, file: fitted/tickets-3f2a9c1d04be.json, sha256: 3f2a..., min_score: 0.7}]

The model is read from the JSON artefact the routing file names, checked against its sha256
(routing/learned/artefact.py); a missing or changed file fails the check with the reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from routing.checks.base import CheckBase, CheckInput, Verdict
from routing.learned.artefact import load_artefact


class RouterScoreCheck(CheckBase):
    kind: Literal["router_score"] = "router_score"
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    min_score: float = Field(ge=0, le=1)

    def run(self, given: CheckInput) -> Verdict:
        router = load_artefact(self.file, self.sha256).router
        if router is None:
            return Verdict(self.kind, False, f"{self.file} holds no router", 0.0)
        score = router.score(given.source)
        passed = score >= self.min_score
        bound = ">=" if passed else "<"
        return Verdict(
            self.kind, passed, f"router score {score:.3f} {bound} {self.min_score:g}", score
        )
