"""Cost reports, aggregated in SQL (see report_queries.py): by tier, model, group, and against
premium-only.

`run_report` answers any filter (batches, project, task type, date range) and grouping;
`build_report` is the one-batch view used by the Python API. Premium-only pricing is per batch,
from the routing file the batch was submitted with: each item's prompt and final answer tokens
(report_walk.py) at the first deployment of its task type's last (premium) tier.
The saving against it splits into routing, deferral and cache (report_levers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from ledger import report_queries as q
from ledger import report_walk as walks
from ledger.batches import find_batch
from ledger.money import QUANTUM, ZERO, money
from ledger.quality import batch_quality
from ledger.report_groupings import BATCH_LEVEL_GROUPINGS, GROUPINGS
from ledger.report_levers import Details, Levers, routing_saving, saving_notes
from ledger.report_premium import Premium, premium_of, recorded_premiums
from ledger.report_queries import ReportFilter
from ledger.report_types import (
    BatchReport,
    FailureLine,
    GroupLine,
    LatencyLine,
    ModelLine,
    Report,
    TierLine,
)

__all__ = [
    "BatchReport",
    "FailureLine",
    "GroupLine",
    "LatencyLine",
    "ModelLine",
    "Report",
    "TierLine",
    "build_report",
    "parse_when",
    "run_report",
]


def _tier_order(premiums: dict[str, Premium | None], tiers: set[str]) -> list[str]:
    order: list[str] = []
    for premium in premiums.values():
        for tier in premium.ladder if premium else []:
            if tier not in order:
                order.append(tier)
    return [t for t in order if t in tiers] + sorted(tiers - set(order))


def _saving_pct(premium: Decimal, cost: Decimal) -> float:
    return float(100 * (premium - cost) / premium) if premium > 0 else 0.0


def _per(cost: Decimal, count: int) -> Decimal | None:
    return (cost / count).quantize(QUANTUM) if count else None


def _gather(session: Session, queries: dict[str, Callable[[Session], Any]]) -> dict[str, Any]:
    """Run independent report queries; on PostgreSQL side by side, each on its own connection.

    Each query is one scan of the attempts; PostgreSQL runs them on separate backends (and
    cores), which is most of what keeps P5 (1M attempts) well under its bar. SQLite has one
    writer and small ledgers: there they run one after another on the caller's session.
    """
    engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        return {name: query(session) for name, query in queries.items()}

    def run(query: Callable[[Session], Any]) -> Any:
        with Session(engine) as own:
            return query(own)

    with ThreadPoolExecutor(max_workers=min(len(queries), 4)) as pool:
        futures = {name: pool.submit(run, query) for name, query in queries.items()}
        return {name: future.result() for name, future in futures.items()}


def run_report(session: Session, f: ReportFilter, by: list[str] | None = None) -> Report:
    """The report for every attempt matching `f`, with `groups` grouped by `by`."""
    by = list(by or ["tier"])
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown[0]!r}; choose from {', '.join(GROUPINGS)}")

    needs_groups = by != ["tier"]
    found = _gather(
        session,
        {
            "models": lambda s: q.by_model(s, f),
            "walk": lambda s: walks.ladder_walk(s, f),
            "counts": lambda s: q.item_counts(s, f),
            "latency": lambda s: q.latency(s, f),
            "failures": lambda s: q.failure_reasons(s, f),
            "simulated": lambda s: q.uses_sim(s, f),
            "audit": lambda s: q.audit_spend(s, f),
            "groups": lambda s: q.grouped(s, f, by) if needs_groups else [],
        },
    )
    models = [ModelLine(*row) for row in found["models"]]
    walk = found["walk"]
    funnel = walks.funnel(walk)
    counts = found["counts"]
    tokens = walks.premium_tokens(walk)
    batch_rows = q.batches_of(session, [t.batch_id for t in tokens])
    premiums = premium_of(batch_rows)
    premium_by_batch = {
        t.batch_id: (
            p.price(t.first_input_tokens, t.last_output_tokens)
            if (p := premiums.get(t.batch_id))
            else ZERO
        )
        for t in tokens
    }
    recorded = 0
    if any(p is not None and p.replay_file for p in premiums.values()):
        sources = {row[0]: row[4] for row in batch_rows}
        replayed, recorded = recorded_premiums(session, f, dict(premiums), sources)
        premium_by_batch.update(replayed)

    by_tier = []
    for tier in _tier_order(premiums, set(funnel)):
        line = funnel[tier]
        received, resolved = int(line["received"]), int(line["resolved"])
        escalated, failed = int(line["escalated"]), int(line["failed"])
        by_tier.append(
            TierLine(
                tier=tier,
                items_received=received,
                attempts=int(line["attempts"]),
                cost_usd=money(line["cost_usd"]),
                resolved=resolved,
                escalated=escalated,
                failed=failed,
                in_progress=received - resolved - escalated - failed,
            )
        )

    if needs_groups:
        groups = _groups(found["groups"], by, batch_rows, premium_by_batch)
    else:  # the default grouping is already known from the funnel and the model lines
        groups = _tier_groups(by_tier, models)
    attempts = sum(m.attempts for m in models)
    not_passed = attempts - sum(m.passed for m in models)
    cost = sum((m.cost_usd for m in models), ZERO)
    premium_cost = sum(premium_by_batch.values(), ZERO)
    levers = Levers.total(models)
    details = Details.total(models)
    audit_calls, audit_cost = found["audit"]
    # What the audit spent measures quality; the route's saving is counted without it.
    routing = routing_saving(premium_cost, cost, levers)
    premium_tiers = sorted({f"{p.tier} ({p.deployment})" for p in premiums.values() if p})
    simulated = found["simulated"]
    notes = [
        "premium-only cost: each item's prompt and final answer tokens priced at "
        f"{', '.join(premium_tiers) or 'the premium tier'}, one call per item",
    ]
    if recorded:
        notes.append(f"{recorded} items priced premium-only at the replay table's recorded cost")
    if any(p is None for p in premiums.values()):
        notes.append("some batches' stored routing files could not be read: priced at 0")
    if simulated:
        notes.append("these figures come from the offline sim provider, not from a real model")
    notes += saving_notes(routing)
    if details.unconfirmed_calls:
        notes.append(
            f"{details.unconfirmed_calls} failed calls (timeouts, calls in flight when a worker "
            "stopped) are in the cost at their estimate, unconfirmed: the provider may not have "
            "processed them; reconcile them against the invoice"
        )
    return Report(
        title=_title(session, f),
        filters=f.describe(),
        group_by=by,
        batches=len(batch_rows),
        items=counts.items,
        succeeded=counts.succeeded,
        failed=counts.failed,
        pending=counts.items - counts.succeeded - counts.failed,
        attempts=attempts,
        input_tokens=sum(m.input_tokens for m in models),
        cached_input_tokens=sum(m.cached_input_tokens for m in models),
        output_tokens=sum(m.output_tokens for m in models),
        cost_usd=cost,
        cost_per_succeeded_usd=_per(cost, counts.succeeded),
        premium_tier=", ".join(sorted({p.tier for p in premiums.values() if p})),
        premium_only_cost_usd=premium_cost,
        saving_usd=premium_cost - cost,
        saving_pct=_saving_pct(premium_cost, cost),
        routing_saving_usd=routing,
        audit_calls=audit_calls,
        audit_cost_usd=audit_cost,
        deferral_saving_usd=levers.deferral_saving_usd,
        cache_saving_usd=levers.cache_saving_usd,
        cache_hits=levers.cache_hits,
        deferred_calls=levers.deferred_calls,
        cache_write_tokens=details.cache_write_tokens,
        reasoning_tokens=details.reasoning_tokens,
        unconfirmed_calls=details.unconfirmed_calls,
        unconfirmed_cost_usd=details.unconfirmed_cost_usd,
        by_tier=by_tier,
        by_model=models,
        groups=groups,
        latency=[LatencyLine(*row) for row in found["latency"]],
        failure_reasons=[
            FailureLine(
                r.kind,
                r.name,
                r.count,
                100.0 * r.count / not_passed if not_passed else 0.0,
                r.example,
            )
            for r in found["failures"]
        ],
        with_expected=counts.with_expected,
        correct=counts.correct,
        simulated=simulated,
        notes=notes,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _tier_groups(by_tier: list[TierLine], models: list[ModelLine]) -> list[GroupLine]:
    lines = []
    for tier in by_tier:
        of_tier = [m for m in models if m.tier == tier.tier]
        passed = sum(m.passed for m in of_tier)
        cost = sum((m.cost_usd for m in of_tier), ZERO)
        levers = Levers.total(of_tier)
        details = Details.total(of_tier)
        lines.append(
            GroupLine(
                key={"tier": tier.tier},
                items=tier.items_received,
                attempts=sum(m.attempts for m in of_tier),
                succeeded=passed,
                errors=sum(m.errors for m in of_tier),
                input_tokens=sum(m.input_tokens for m in of_tier),
                cached_input_tokens=sum(m.cached_input_tokens for m in of_tier),
                output_tokens=sum(m.output_tokens for m in of_tier),
                cost_usd=cost,
                cost_per_succeeded_usd=_per(cost, passed),
                cache_hits=levers.cache_hits,
                deferred_calls=levers.deferred_calls,
                cache_saving_usd=levers.cache_saving_usd,
                deferral_saving_usd=levers.deferral_saving_usd,
                **details.__dict__,
            )
        )
    return lines


def _groups(
    rows: list[q.GroupRow],
    by: list[str],
    batch_rows: list[tuple[str, str, str | None, str, str]],
    premium_by_batch: dict[str, Decimal],
) -> list[GroupLine]:
    # Premium-only per group exists only when every item sits in one group (batch-level keys).
    group_premium: dict[tuple[str | None, ...], Decimal] | None = None
    if set(by) <= BATCH_LEVEL_GROUPINGS:
        group_premium = {}
        for batch_id, task_type, project, _, _ in batch_rows:
            values = {"batch": batch_id, "task_type": task_type, "project": project}
            key = tuple(values[name] for name in by)
            group_premium[key] = group_premium.get(key, ZERO) + premium_by_batch.get(batch_id, ZERO)
    lines = []
    for row in rows:
        premium = None
        if group_premium is not None:
            premium = group_premium.get(tuple(row.key[name] for name in by), ZERO)
        lines.append(
            GroupLine(
                key=row.key,
                items=row.items,
                attempts=row.attempts,
                succeeded=row.passed,
                errors=row.errors,
                input_tokens=row.input_tokens,
                cached_input_tokens=row.cached_input_tokens,
                output_tokens=row.output_tokens,
                cost_usd=row.cost_usd,
                cost_per_succeeded_usd=_per(row.cost_usd, row.passed),
                premium_only_cost_usd=premium,
                saving_usd=None if premium is None else premium - row.cost_usd,
                cache_hits=row.levers.cache_hits,
                deferred_calls=row.levers.deferred_calls,
                cache_saving_usd=row.levers.cache_saving_usd,
                deferral_saving_usd=row.levers.deferral_saving_usd,
                routing_saving_usd=(
                    None if premium is None else routing_saving(premium, row.cost_usd, row.levers)
                ),
                **row.details.__dict__,
            )
        )
    return lines


def _title(session: Session, f: ReportFilter) -> str:
    parts = []
    if len(f.batch_ids) == 1:
        batch = find_batch(session, f.batch_ids[0])
        parts.append(f"batch {batch.name or batch.id} ({batch.task_type})")
    elif f.batch_ids:
        parts.append(f"{len(f.batch_ids)} batches")
    if f.project is not None:
        parts.append(f"project {f.project}")
    if f.task_type is not None:
        parts.append(f"task type {f.task_type}")
    if f.since is not None:
        parts.append(f"from {f.since:%Y-%m-%d %H:%M}")
    if f.until is not None:
        parts.append(f"until {f.until:%Y-%m-%d %H:%M} (exclusive)")
    return ", ".join(parts) or "all batches"


def build_report(session: Session, batch_ref: str) -> BatchReport:
    """One batch's report: the shape `batchrouter.api.batch_report` returns."""
    batch = find_batch(session, batch_ref)
    full = run_report(session, ReportFilter(batch_ids=(batch.id,)))
    # A batch lists every tier of its ladder, even those no item reached yet.
    tiers = {line.tier: line for line in full.by_tier}
    ladder = premium_of(
        [(batch.id, batch.task_type, batch.project, batch.config_yaml, batch.config_source)]
    )[batch.id]
    order = list(ladder.ladder) if ladder else []
    by_tier = [tiers.get(t) or TierLine(t, 0, 0, ZERO, 0, 0, 0) for t in order]
    by_tier += [line for t, line in tiers.items() if t not in order]
    return BatchReport(
        batch_id=batch.id,
        name=batch.name,
        task_type=batch.task_type,
        items=batch.total,
        succeeded=full.succeeded,
        failed=full.failed,
        pending=batch.total - full.succeeded - full.failed,
        attempts=full.attempts,
        cost_usd=full.cost_usd,
        premium_tier=full.premium_tier or (ladder.tier if ladder else ""),
        premium_only_cost_usd=full.premium_only_cost_usd,
        saving_usd=full.saving_usd,
        saving_pct=full.saving_pct,
        routing_saving_usd=full.routing_saving_usd,
        audit_calls=full.audit_calls,
        audit_cost_usd=full.audit_cost_usd,
        deferral_saving_usd=full.deferral_saving_usd,
        cache_saving_usd=full.cache_saving_usd,
        cache_hits=full.cache_hits,
        deferred_calls=full.deferred_calls,
        cache_write_tokens=full.cache_write_tokens,
        reasoning_tokens=full.reasoning_tokens,
        unconfirmed_calls=full.unconfirmed_calls,
        unconfirmed_cost_usd=full.unconfirmed_cost_usd,
        by_tier=by_tier,
        by_model=full.by_model,
        with_expected=full.with_expected,
        correct=full.correct,
        simulated=full.simulated,
        notes=full.notes,
        quality=batch_quality(session, batch.id),
    )


def parse_when(text: str, *, end: bool = False) -> datetime:
    """A `--since`/`--until` bound in UTC. A bare date as `--until` includes that whole day."""
    from datetime import timedelta

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if end and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value
