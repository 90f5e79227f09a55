"""The data a chunk's work produces: claimed items, the attempts made for them, and their
outcomes. Plain dataclasses, owned here so that the modules that write them (transitions, cache,
dedup) and the worker that builds them import one place and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing.votes import Vote

# The usage columns of an attempt, in the order of its table: what a cache entry keeps of the
# call that earned it (ledger/cache.py) and a journal row writes (ledger/journal.py).
USAGE_KEYS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "usage_estimated",
)


@dataclass(frozen=True)
class CachePolicy:
    """A task type's cache settings, carried on its outcomes so the ledger can store entries."""

    namespace: str
    ttl_s: float


@dataclass(frozen=True)
class ClaimedItem:
    id: int
    batch_id: str
    external_id: str
    text: str
    expected: str | None
    fields: dict[str, Any]
    tier: str
    attempts: int  # calls that count against the attempt cap (since the last manual retry)
    cost_usd: float
    last_output: str | None
    last_error: str | None
    claim_no: int = 1  # this claim's number: the outcome is written only if it is still current
    attempt_no_base: int = 0  # attempt numbers continue after calls made before a retry
    # Calls of a round an earlier claim left unfinished (its worker died): the new round
    # continues from them and calls again only when none reached a verdict (ledger/journal.py).
    dead_round: tuple[AttemptRecord, ...] = ()
    # The answers earlier rounds bought for the item (earlier rungs, their samples, cache
    # hits), oldest first: votes a consensus on this rung counts (routing/votes.py).
    votes: tuple[Vote, ...] = ()


@dataclass
class AttemptRecord:
    attempt_no: int
    tier: str
    deployment: str
    provider: str
    model: str
    outcome: str  # passed | check_failed | error
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: float = 0.0
    prices: dict[str, Any] = field(default_factory=dict)
    latency_ms: float = 0.0  # the provider's: request sent to response read
    queued_ms: float = 0.0  # the call's time in this worker before and around that
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    error_class: str | None = None
    error_message: str | None = None
    output: str | None = None
    request_id: str | None = None
    cache_hit: bool = False  # served by the response cache or by an in-batch duplicate; cost 0
    provider_batch_id: str | None = None  # a deferred call: the provider batch that made it
    saved_usd: float = 0.0  # what the cache or the batch discount saved (models.Attempt)
    # Not attempt columns: the response-cache key of the request (ledger/cache.py), set when
    # the task caches, and the token logprobs a passed call stores with its cache entry.
    cache_key: str | None = None
    token_logprobs: list[float] | None = None
    # The call's own answer as the provider gave it (`output` is what the item keeps: a passed
    # answer normalised, or the consensus's winner). The cache stores this one.
    answer: str | None = None


@dataclass
class ItemOutcome:
    """What happened to one claimed item on its tier, and where it goes next."""

    item_id: int
    batch_id: str
    tier: str  # the tier it was claimed on
    attempts: list[AttemptRecord]
    next_state: str  # succeeded | failed | queued (escalated)
    next_tier: str
    output: str | None = None
    deployment: str | None = None
    model: str | None = None
    error: str | None = None
    claim_no: int = 1
    parked: bool = False  # queued again on the same tier without a message (awaits a resume)
    pause_reason: str | None = None  # pause the whole batch with this reason
    # Parked because its whole tier is down (worker/outage.py): published again on the same
    # tier after this many seconds, with no attempt spent on the wait.
    resume_in_s: float | None = None
    attempts_given_back: int = 0  # of its calls, how many do not count towards max_attempts
    cache: CachePolicy | None = None  # the task caches: store what passed (ledger/cache.py)
