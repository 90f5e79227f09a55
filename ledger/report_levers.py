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

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func

from ledger.models import Attempt

# One definition of each lever, shared by every query that reports it.
CACHED: ColumnElement[bool] = Attempt.cache_hit.is_(True)
DEFERRED: ColumnElement[bool] = and_(Attempt.provider_batch_id.is_not(None), ~CACHED)


def billed(column: Any) -> ColumnElement[Any]:
    """The sum of a token column over billed calls: a cache hit's reused tokens cost nothing."""
    return func.coalesce(func.sum(case((CACHED, 0), else_=column)), 0)


def lever_columns() -> list[ColumnElement[Any]]:
    """cache hits, deferred calls, cache saving, deferral saving: four aggregates, in order."""
    return [
        func.coalesce(func.sum(case((CACHED, 1), else_=0)), 0),
        func.coalesce(func.sum(case((DEFERRED, 1), else_=0)), 0),
        func.coalesce(func.sum(case((CACHED, Attempt.saved_usd), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((DEFERRED, Attempt.saved_usd), else_=0.0)), 0.0),
    ]


@dataclass
class Levers:
    """The lever figures of one row of a report query (or a sum of them)."""

    cache_hits: int = 0
    deferred_calls: int = 0
    cache_saving_usd: float = 0.0
    deferral_saving_usd: float = 0.0

    @classmethod
    def of(cls, values: Any) -> Levers:
        """From the four `lever_columns` values of a result row."""
        hits, deferred, cache, deferral = values
        return cls(int(hits), int(deferred), float(cache), float(deferral))

    @classmethod
    def total(cls, parts: Any) -> Levers:
        """The sum of objects carrying the four lever fields (model lines, group lines)."""
        out = cls()
        for part in parts:
            out.cache_hits += part.cache_hits
            out.deferred_calls += part.deferred_calls
            out.cache_saving_usd += part.cache_saving_usd
            out.deferral_saving_usd += part.deferral_saving_usd
        return out


def routing_saving(premium_usd: float, cost_usd: float, levers: Levers) -> float:
    """premium-only - (actual + cache saving + deferral saving): the cascade's own saving.

    actual + both savings is what the same calls would have cost at immediate prices with no
    cache, so the three savings add up to the total (premium-only - actual) by construction.
    """
    return premium_usd - (cost_usd + levers.cache_saving_usd + levers.deferral_saving_usd)


def saving_notes(routing_usd: float) -> list[str]:
    """A note for the report when routing saved less than nothing."""
    if routing_usd >= 0:
        return []
    return [
        "routing saving is negative: the escalations cost more (at immediate prices) than one "
        "premium call per item would have; the cheap tiers resolved too few items"
    ]
