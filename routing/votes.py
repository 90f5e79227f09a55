"""Votes: the answers already bought for an item, and which ones a consensus check still needs.

Every answer recorded for an item (on any rung, from any deployment or sample, a cache hit
included) is a vote. A consensus check names the answers it counts as slots:
`deployments: [a, b, c]` is the first answer of each; `k: 3` is three answers of the rung's own
deployment. A slot already filled by a vote costs nothing; the others are asked in order, and
only until the count is decided: an answer has `m` votes, or none can reach `m` any more. So
"majority of three" asks the third model only when the first two disagree, and no answer is
paid for twice for one item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from routing.checks import ConsensusCheck


@dataclass(frozen=True)
class Vote:
    deployment: str
    answer: str


Slot = tuple[str, int]  # (deployment, which of its answers: 0 the first)


def slots(spec: ConsensusCheck, own: str) -> list[Slot]:
    """The answers `spec` counts on a rung whose call went to deployment `own`."""
    if spec.deployments is not None:
        return [(name, 0) for name in spec.deployments]
    return [(own, index) for index in range(spec.k or 1)]


def filled(wanted: Sequence[Slot], votes: Sequence[Vote]) -> dict[Slot, str]:
    """The slots the votes fill: the n-th vote of a deployment fills its slot n."""
    seen: dict[str, int] = {}
    by_slot: dict[Slot, str] = {}
    for vote in votes:
        index = seen.get(vote.deployment, 0)
        seen[vote.deployment] = index + 1
        by_slot[(vote.deployment, index)] = vote.answer
    return {slot: by_slot[slot] for slot in wanted if slot in by_slot}


def decided(spec: ConsensusCheck, answers: Sequence[str], still_open: int) -> bool:
    """Whether more answers could change the verdict: no, once one answer has `m` votes or
    none can reach `m` with the `still_open` slots left."""
    counts: dict[str, int] = {}
    for answer in answers:
        key = spec.normalizer(answer)
        if key:
            counts[key] = counts.get(key, 0) + 1
    best = max(counts.values(), default=0)
    return best >= spec.m or best + still_open < spec.m
