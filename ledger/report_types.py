"""The shapes of a cost report: plain dataclasses, filled by report.py, drawn by
batchrouter/reports/ (terminal.py, html.py). Money is Decimal (ledger/money.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from ledger.money import ZERO
from ledger.quality import Quality


@dataclass
class TierLine:
    """The escalation funnel on one tier: items it received, resolved, passed on, failed."""

    tier: str
    items_received: int
    attempts: int
    cost_usd: Decimal
    resolved: int  # items that succeeded on this tier
    escalated: int  # items passed on to the next tier
    failed: int  # items that ended failed on this tier
    in_progress: int = 0  # items still queued or running on this tier


@dataclass
class ModelLine:
    tier: str
    deployment: str
    model: str
    attempts: int
    passed: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    errors: int = 0  # calls the provider failed
    cache_hits: int = 0  # answers reused from the cache or an identical item: cost 0
    deferred_calls: int = 0  # calls billed at a provider batch API's prices
    cache_saving_usd: Decimal = ZERO  # what the reused calls cost
    deferral_saving_usd: Decimal = ZERO  # immediate minus batch prices of the deferred calls
    audit_cost_usd: Decimal = ZERO  # of the cost, the audit calls' (routing/audit.py)
    # ledger.report_levers.Details: cache-write and reasoning tokens (billed calls; reasoning is
    # part of the output), failed calls billed at an estimate (part of the cost)
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unconfirmed_calls: int = 0
    unconfirmed_cost_usd: Decimal = ZERO


@dataclass
class GroupLine:
    key: dict[str, str | None]
    items: int
    attempts: int
    succeeded: int  # attempts that passed: one per succeeded item
    errors: int  # attempts the provider failed
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cost_per_succeeded_usd: Decimal | None
    premium_only_cost_usd: Decimal | None = None  # only for batch-level groupings
    saving_usd: Decimal | None = None
    cache_hits: int = 0
    deferred_calls: int = 0
    cache_saving_usd: Decimal = ZERO
    deferral_saving_usd: Decimal = ZERO
    routing_saving_usd: Decimal | None = None  # like premium-only: batch-level groupings only
    # ledger.report_levers.Details: cache-write and reasoning tokens (billed calls; reasoning is
    # part of the output), failed calls billed at an estimate (part of the cost)
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unconfirmed_calls: int = 0
    unconfirmed_cost_usd: Decimal = ZERO


@dataclass
class LatencyLine:
    deployment: str
    model: str
    calls: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float  # the provider's latency: request sent to response read
    queued_mean_ms: float | None = None  # time in the worker besides (None: not recorded)


@dataclass
class FailureLine:
    kind: str  # check | error
    name: str
    count: int
    share_pct: float  # of the attempts that did not pass
    example: str | None = None


@dataclass
class Report:
    title: str
    filters: dict[str, Any]
    group_by: list[str]
    batches: int
    items: int
    succeeded: int
    failed: int
    pending: int
    attempts: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cost_per_succeeded_usd: Decimal | None
    premium_tier: str
    premium_only_cost_usd: Decimal
    saving_usd: Decimal  # premium-only - cost = routing + deferral + cache saving
    saving_pct: float
    # Where the saving came from (report_levers.py); routing may be negative.
    routing_saving_usd: Decimal = ZERO
    deferral_saving_usd: Decimal = ZERO
    cache_saving_usd: Decimal = ZERO
    cache_hits: int = 0
    deferred_calls: int = 0
    # ledger.report_levers.Details: cache-write and reasoning tokens (billed calls; reasoning is
    # part of the output), failed calls billed at an estimate (part of the cost)
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unconfirmed_calls: int = 0
    unconfirmed_cost_usd: Decimal = ZERO
    audit_calls: int = 0  # calls made to measure quality (routing/audit.py)
    audit_cost_usd: Decimal = ZERO  # in cost_usd; saving = routing + deferral + cache - audit
    by_tier: list[TierLine] = field(default_factory=list)
    by_model: list[ModelLine] = field(default_factory=list)
    groups: list[GroupLine] = field(default_factory=list)
    latency: list[LatencyLine] = field(default_factory=list)
    failure_reasons: list[FailureLine] = field(default_factory=list)
    with_expected: int = 0
    correct: int = 0
    simulated: bool = False
    notes: list[str] = field(default_factory=list)
    generated_at: str = ""

    def as_dict(self) -> dict:
        """Money as Decimal: write it with ledger.money.dumps, which keeps it exact."""
        return asdict(self)


@dataclass
class BatchReport:
    batch_id: str
    name: str | None
    task_type: str
    items: int
    succeeded: int
    failed: int
    pending: int
    attempts: int
    cost_usd: Decimal
    premium_tier: str
    premium_only_cost_usd: Decimal
    saving_usd: Decimal
    saving_pct: float
    by_tier: list[TierLine] = field(default_factory=list)
    by_model: list[ModelLine] = field(default_factory=list)
    with_expected: int = 0  # items whose producer gave an expected answer
    correct: int = 0  # of those, items whose final output equals it
    simulated: bool = False  # the offline sim provider produced these numbers
    notes: list[str] = field(default_factory=list)
    routing_saving_usd: Decimal = ZERO
    deferral_saving_usd: Decimal = ZERO
    cache_saving_usd: Decimal = ZERO
    cache_hits: int = 0
    deferred_calls: int = 0
    # ledger.report_levers.Details: cache-write and reasoning tokens (billed calls; reasoning is
    # part of the output), failed calls billed at an estimate (part of the cost)
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unconfirmed_calls: int = 0
    unconfirmed_cost_usd: Decimal = ZERO
    audit_calls: int = 0  # calls made to measure quality (routing/audit.py)
    audit_cost_usd: Decimal = ZERO  # in cost_usd; saving = routing + deferral + cache - audit
    # Measured quality of the accepted answers (ledger/quality.py), when anything can judge it.
    quality: Quality | None = None

    def as_dict(self) -> dict:
        """Money as Decimal: write it with ledger.money.dumps, which keeps it exact."""
        return asdict(self)
