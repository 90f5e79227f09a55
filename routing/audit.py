"""Audit sampling: which accepted items are also sent to the audit rung, and how the answers are
compared. Pure: the same item, seed and rate always give the same choice, in the worker, in a
replay and in a test.

A task type's `audit: {rate, tier, seed}` sends a random, reproducible share of the items
accepted below `tier` (default: the ladder's last rung) to it as well. The audit call is
priced and recorded (outcome `audit`) and never changes the item's result; the report compares
its answer with the accepted one to estimate, per rung, how often accepted answers are right
(ledger/quality.py).
"""

from __future__ import annotations

import hashlib
import math

from pydantic import Field

from routing.checks import NORMALIZERS, ConsensusCheck, LabelCheck, normalize_label
from routing.schema import StrictModel


class Audit(StrictModel):
    rate: float = Field(gt=0, le=1)  # the share of accepted items sampled
    tier: str | None = None  # the audit rung; None: the last rung of the ladder
    seed: int = 0  # another seed draws another sample


def audited(audit: Audit, item_key: str) -> bool:
    """Whether the item with this producer id is in the audit sample (uniform in [0, 1) from a
    hash of seed and id, below the rate)."""
    digest = hashlib.sha256(f"{audit.seed}:{item_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < audit.rate


def matches_expected(output: str | None, expected: str) -> bool:
    """Whether an output is the expected answer: equal, or equal as labels (case, spacing,
    punctuation ignored). How `evaluate` and the report's quality figures judge accuracy."""
    if output is None:
        return False
    return output.strip() == expected.strip() or normalize_label(output) == normalize_label(
        expected
    )


def wilson_interval(right: int, sampled: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of a share `right / sampled`: unlike the
    plain normal interval it stays inside [0, 1] and is honest at small samples and at 0 or 1."""
    if sampled == 0:
        return 0.0, 1.0
    share = right / sampled
    scale = 1 + z * z / sampled
    centre = (share + z * z / (2 * sampled)) / scale
    half = z * math.sqrt(share * (1 - share) / sampled + z * z / (4 * sampled * sampled)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def same_answer(checks: list, first: str, second: str) -> bool:
    """Whether two answers agree the way the task compares answers: its consensus's
    normaliser, else label normalisation for a label task, else case and spacing only."""
    name = "text"
    for check in checks:
        if isinstance(check, ConsensusCheck):
            name = check.normalize
            break
        if isinstance(check, LabelCheck):
            name = "label"
    normalize = NORMALIZERS[name]
    return bool(normalize(first)) and normalize(first) == normalize(second)
