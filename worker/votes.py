"""A consensus on the call path: count the votes the item has, ask only for those still needed.

The pure part (which answers a consensus counts, when the count is decided) is routing/votes.py;
this module makes the calls for the empty slots, through the round's own `call`, so each is a
recorded attempt (outcome `sample`), a cache hit when the cache holds it, and counted against
the attempt cap.
"""

from __future__ import annotations

from typing import Protocol

from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from routing.checks import ConsensusCheck
from routing.config import RoutingConfig, TaskType
from routing.types import CompletionResult, ProviderError
from routing.votes import Vote, decided, filled, slots
from worker.middleware import Denied


class Round(Protocol):
    """What judging needs of an item's round on its tier (worker/attempt.py's `_Run`)."""

    item: ClaimedItem
    config: RoutingConfig
    task: TaskType
    records: list[AttemptRecord]

    def can_call(self) -> bool: ...

    async def call(
        self, name: str, *, sample: int | None = None, tier: str | None = None
    ) -> tuple[AttemptRecord, CompletionResult | ProviderError] | Denied: ...

    def settle(self, record: AttemptRecord) -> None: ...

    def outcome(
        self, state: str, to_tier: str, error: str | None, record: AttemptRecord | None
    ) -> ItemOutcome: ...


def answer_of(record: AttemptRecord) -> str | None:
    """The answer a call gave, None for a failed call."""
    if record.error_class is not None:
        return None
    return record.answer if record.answer is not None else record.output


async def collect_votes(run: Round, spec: ConsensusCheck, record: AttemptRecord) -> list[str]:
    """The answers `spec` counts for this item, the rung's own (`record`) first: votes it
    already has, then the missing ones asked in order until the count is decided."""
    own = record.deployment
    known = [Vote(own, answer_of(record) or "")]
    known += list(run.item.votes)
    known += [
        Vote(earlier.deployment, answer)
        for earlier in run.records
        if earlier is not record and (answer := answer_of(earlier)) is not None
    ]
    wanted = slots(spec, own)
    have = filled(wanted, known)
    answers = [have[slot] for slot in wanted if slot in have]
    missing = [slot for slot in wanted if slot not in have]
    while missing and not decided(spec, answers, len(missing)):
        name, sample = missing.pop(0)
        if not run.can_call():
            break  # the attempt cap also bounds what consensus may spend
        called = await run.call(name, sample=sample)
        if isinstance(called, Denied):
            break  # fewer answers; the consensus check judges what it has
        _record, result = called
        if isinstance(result, CompletionResult):
            answers.append(result.text)
    return answers
