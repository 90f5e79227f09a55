"""Where the saving came from: routing, deferral and cache, split in SQL aggregates.

Two cost levers are recorded on the attempt rows (migration 0005), each with `saved_usd`:

- a cache hit (`cache_hit`) cost 0 and saved what the call it reused cost;
- a deferred call (`provider_batch_id` set, not a cache hit) was billed at batch prices and
  saved the same tokens at immediate prices minus that.

The levers are extra aggregate columns on the queries the report already runs (per model and
per group), not queries of their own: the report keeps its number of scans of the attempts.
Routing is what remains of the total saving once both levers are taken out: the cascade's
saving with every call at immediate prices and no cache. It is negative when escalations cost
more than one premium call per item would have.

A cache hit row carries the tokens of the call it reused, though nothing was billed: token
totals count billed tokens only (`billed`), while the premium-only baseline (report_walk.py)
keeps every row, so an item answered from the cache still has its prompt and answer priced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func

from ledger.models import Attempt
from ledger.money import ZERO, money
from ledger.money_sql import money_sum

# One definition of each lever, shared by every query that reports it.
CACHED: ColumnElement[bool] = Attempt.cache_hit.is_(True)
DEFERRED: ColumnElement[bool] = and_(Attempt.provider_batch_id.is_not(None), ~CACHED)
# A failed call billed at its estimate because nobody knows whether the provider processed it
# (a timeout, or a call in flight when its worker died): the conservative bound is in the cost,
# and reported apart as "estimated, unconfirmed" so the ledger can be reconciled with an invoice.
# A call made to measure quality (routing/audit.py): in the cost, never a step of the route, so
# the routing saving is counted without it in every grouping (a batch, a tier, a day...).
AUDIT: ColumnElement[bool] = Attempt.outcome == "audit"
UNCONFIRMED: ColumnElement[bool] = and_(
    Attempt.outcome == "error", Attempt.usage_estimated.is_(True), ~CACHED
)


def billed(column: Any) -> ColumnElement[Any]:
    """The sum of a token column over billed calls: a cache hit's reused tokens cost nothing."""
    return func.coalesce(func.sum(case((CACHED, 0), else_=column)), 0)


def lever_columns() -> list[ColumnElement[Any]]:
    """cache hits, deferred calls, cache saving, deferral saving, audit cost: five aggregates,
    in order (`Levers.of`)."""
    return [
        func.coalesce(func.sum(case((CACHED, 1), else_=0)), 0),
        func.coalesce(func.sum(case((DEFERRED, 1), else_=0)), 0),
        money_sum(case((CACHED, Attempt.saved_usd), else_=ZERO)),
        money_sum(case((DEFERRED, Attempt.saved_usd), else_=ZERO)),
        money_sum(case((AUDIT, Attempt.cost_usd), else_=ZERO)),
    ]


def detail_columns() -> list[ColumnElement[Any]]:
    """cache-write tokens, reasoning tokens (billed calls), unconfirmed calls and their cost:
    four aggregates, in order (`Details.of`)."""
    return [
        billed(Attempt.cache_write_tokens),
        billed(Attempt.reasoning_tokens),
        func.coalesce(func.sum(case((UNCONFIRMED, 1), else_=0)), 0),
        money_sum(case((UNCONFIRMED, Attempt.cost_usd), else_=ZERO)),
    ]


@dataclass
class Details:
    """The figures of `detail_columns` for one row of a report query."""

    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # part of the output tokens (billed as output)
    unconfirmed_calls: int = 0
    unconfirmed_cost_usd: Decimal = ZERO  # part of the cost

    @classmethod
    def of(cls, values: Any) -> Details:
        writes, reasoning, calls, cost = values
        return cls(int(writes), int(reasoning), int(calls), money(cost))

    @classmethod
    def total(cls, parts: Any) -> Details:
        """The sum of objects carrying the four detail fields (model lines)."""
        return _total(cls(), parts)


@dataclass
class Levers:
    """The lever figures of one row of a report query (or a sum of them)."""

    cache_hits: int = 0
    deferred_calls: int = 0
    cache_saving_usd: Decimal = ZERO
    deferral_saving_usd: Decimal = ZERO
    audit_cost_usd: Decimal = ZERO  # part of the cost: spent to measure quality

    @classmethod
    def of(cls, values: Any) -> Levers:
        """From the five `lever_columns` values of a result row."""
        hits, deferred, cache, deferral, audit = values
        return cls(int(hits), int(deferred), money(cache), money(deferral), money(audit))

    @classmethod
    def total(cls, parts: Any) -> Levers:
        """The sum of objects carrying the four lever fields (model lines, group lines)."""
        return _total(cls(), parts)


def _total(out: Any, parts: Any) -> Any:
    """`out` (a zero Levers or Details) plus each part's fields of the same names."""
    for part in parts:
        for name in (f.name for f in fields(out)):
            setattr(out, name, getattr(out, name) + getattr(part, name))
    return out


def routing_saving(premium_usd: Decimal, cost_usd: Decimal, levers: Levers) -> Decimal:
    """premium-only - (actual - audit + cache saving + deferral saving): the cascade's own
    saving.

    actual + both savings is what the same calls would have cost at immediate prices with no
    cache, so the three savings minus the audit's cost add up to the total (premium-only -
    actual) by construction. The audit's calls measure quality; they are not the route's.
    """
    route = cost_usd - levers.audit_cost_usd
    return premium_usd - (route + levers.cache_saving_usd + levers.deferral_saving_usd)


def saving_notes(routing_usd: Decimal) -> list[str]:
    """A note for the report when routing saved less than nothing."""
    if routing_usd >= 0:
        return []
    return [
        "routing saving is negative: the escalations cost more (at immediate prices) than one "
        "premium call per item would have; the cheap tiers resolved too few items"
    ]
