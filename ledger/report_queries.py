"""The report's SQL: every figure is aggregated in the database, never by loading rows.

Each function takes a `ReportFilter` and returns a few rows per group. The filters map onto
indexes: a batch onto `ix_attempts_batch`, a project or task type onto `ix_batches_project` /
`ix_batches_task_type` (batches first, then their attempts), a date range onto
`ix_attempts_created_at`, a batch's failures onto `ix_attempts_batch_outcome`.

Split by responsibility: the ladder walk behind the funnel and the premium-only baseline is in
report_walk.py; the cost levers (cache, deferral) are extra columns defined in report_levers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    distinct,
    false,
    func,
    select,
)
from sqlalchemy.orm import Session

from ledger.models import Attempt, Batch, Item, ItemState
from ledger.money import ZERO, money
from ledger.money_sql import money_sum
from ledger.report_groupings import BATCH_LEVEL_GROUPINGS  # what `--by` accepts
from ledger.report_levers import CACHED, Details, Levers, billed, detail_columns, lever_columns

SUCCEEDED = ItemState.SUCCEEDED.value
FAILED = ItemState.FAILED.value


@dataclass(frozen=True)
class ReportFilter:
    batch_ids: tuple[str, ...] = ()
    project: str | None = None
    task_type: str | None = None
    since: datetime | None = None  # inclusive, UTC
    until: datetime | None = None  # exclusive, UTC

    @property
    def dated(self) -> bool:
        return self.since is not None or self.until is not None

    def describe(self) -> dict[str, Any]:
        return {
            "batches": list(self.batch_ids),
            "project": self.project,
            "task_type": self.task_type,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _batch_conditions(f: ReportFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.batch_ids:
        conditions.append(Batch.id.in_(f.batch_ids))
    if f.project is not None:
        conditions.append(Batch.project == f.project)
    if f.task_type is not None:
        conditions.append(Batch.task_type == f.task_type)
    return conditions


def attempt_conditions(f: ReportFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.batch_ids:
        conditions.append(Attempt.batch_id.in_(f.batch_ids))
    if f.project is not None or f.task_type is not None:
        # A semi-join on the small batches table; the planner then reads attempts by batch.
        conditions.append(Attempt.batch_id.in_(select(Batch.id).where(*_batch_conditions(f))))
    if f.since is not None:
        conditions.append(Attempt.created_at >= f.since)
    if f.until is not None:
        conditions.append(Attempt.created_at < f.until)
    return conditions


def _day(session: Session) -> ColumnElement[str]:
    """The UTC calendar day of an attempt, as 'YYYY-MM-DD' on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Attempt.created_at), "YYYY-MM-DD")
    return func.substr(Attempt.created_at, 1, 10)  # SQLite keeps ISO text


def _grouping_column(session: Session, name: str) -> ColumnElement[Any]:
    columns: dict[str, Any] = {
        "tier": Attempt.tier,
        "model": Attempt.model,
        "deployment": Attempt.deployment,
        "batch": Attempt.batch_id,
        "task_type": Batch.task_type,
        "project": Batch.project,
    }
    return _day(session) if name == "day" else columns[name]


def _metrics() -> list[ColumnElement[Any]]:
    return [
        func.count(distinct(Attempt.item_id)),
        func.count(),
        func.coalesce(func.sum(case((Attempt.outcome == "passed", 1), else_=0)), 0),
        func.coalesce(func.sum(case((Attempt.outcome == "error", 1), else_=0)), 0),
        billed(Attempt.input_tokens),
        billed(Attempt.cached_input_tokens),
        billed(Attempt.output_tokens),
        money_sum(Attempt.cost_usd),
        *lever_columns(),
        *detail_columns(),
    ]


@dataclass
class GroupRow:
    key: dict[str, str | None]
    items: int
    attempts: int
    passed: int
    errors: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal = ZERO
    levers: Levers = field(default_factory=Levers)
    details: Details = field(default_factory=Details)


def grouped(session: Session, f: ReportFilter, by: list[str]) -> list[GroupRow]:
    keys = [_grouping_column(session, name).label(name) for name in by]
    stmt: Select[Any] = select(*keys, *_metrics()).select_from(Attempt)
    if BATCH_LEVEL_GROUPINGS.intersection(by) - {"batch"}:
        stmt = stmt.join(Batch, Batch.id == Attempt.batch_id)
    stmt = stmt.where(*attempt_conditions(f)).group_by(*keys).order_by(*keys)
    rows = []
    for row in session.execute(stmt).all():
        values = list(row)
        key = {name: (None if v is None else str(v)) for name, v in zip(by, values, strict=False)}
        items, attempts, passed, errors, i, c, o, cost = values[len(by) : len(by) + 8]
        rows.append(
            GroupRow(
                key,
                int(items),
                int(attempts),
                int(passed),
                int(errors),
                int(i),
                int(c),
                int(o),
                money(cost),
                Levers.of(values[len(by) + 8 : len(by) + 13]),
                Details.of(values[len(by) + 13 :]),
            )
        )
    return rows


def by_model(session: Session, f: ReportFilter) -> list[tuple[Any, ...]]:
    """(tier, deployment, model, attempts, passed, input, cached, output, cost, errors,
    cache hits, deferred calls, cache saving, deferral saving, audit cost, cache-write tokens,
    reasoning tokens, unconfirmed calls, unconfirmed cost): `ModelLine`'s fields in order.

    Token sums count billed calls only (report_levers.billed).
    """
    return [
        tuple(row)
        for row in session.execute(
            select(
                Attempt.tier,
                Attempt.deployment,
                Attempt.model,
                func.count(),
                func.coalesce(func.sum(case((Attempt.outcome == "passed", 1), else_=0)), 0),
                billed(Attempt.input_tokens),
                billed(Attempt.cached_input_tokens),
                billed(Attempt.output_tokens),
                money_sum(Attempt.cost_usd),
                func.coalesce(func.sum(case((Attempt.outcome == "error", 1), else_=0)), 0),
                *lever_columns(),
                *detail_columns(),
            )
            .where(*attempt_conditions(f))
            .group_by(Attempt.tier, Attempt.deployment, Attempt.model)
            .order_by(Attempt.tier, Attempt.deployment, Attempt.model)
        ).all()
    ]


@dataclass
class ItemCounts:
    items: int = 0
    succeeded: int = 0
    failed: int = 0
    with_expected: int = 0
    correct: int = 0


def item_counts(session: Session, f: ReportFilter) -> ItemCounts:
    """Items in scope by final state, and accuracy against the producers' expected answers.

    Without a date range the scope is every item of the matching batches (not yet attempted
    ones included); with one, the items attempted in that range.
    """
    scope: ColumnElement[bool]
    if f.dated:
        scope = Item.id.in_(select(Attempt.item_id).where(*attempt_conditions(f)))
    elif _batch_conditions(f):
        scope = Item.batch_id.in_(select(Batch.id).where(*_batch_conditions(f)))
    else:
        scope = ~false()
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Item.state == SUCCEEDED, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Item.state == FAILED, 1), else_=0)), 0),
            func.count(Item.expected),
            func.coalesce(
                func.sum(
                    case((and_(Item.state == SUCCEEDED, Item.output == Item.expected), 1), else_=0)
                ),
                0,
            ),
        ).where(scope)
    ).one()
    return ItemCounts(*(int(v) for v in row))


def batches_of(
    session: Session, batch_ids: list[str]
) -> list[tuple[str, str, str | None, str, str]]:
    """(id, task_type, project, config_yaml, config_source) of the given batches."""
    if not batch_ids:
        return []
    return [
        tuple(row)  # type: ignore[misc]
        for row in session.execute(
            select(
                Batch.id, Batch.task_type, Batch.project, Batch.config_yaml, Batch.config_source
            ).where(Batch.id.in_(batch_ids))
        ).all()
    ]


PERCENTILES = (50, 95, 99)


def latency(
    session: Session, f: ReportFilter
) -> list[tuple[str, str, int, float, float, float, float, float | None]]:
    """(deployment, model, calls, p50, p95, p99, mean, mean queued) in ms, nearest-rank
    percentiles of the provider's latency, and the mean time calls spent queued in the worker
    (None when no call recorded it: attempts from before migration 0008). Cache hits made no
    call: they are left out (their latency 0 would pull every percentile down).

    PostgreSQL's percentile_disc is nearest-rank; SQLite has no percentile aggregate, so the
    same ranks are read off a window function (rank r = ceil(p * n), in integer arithmetic).
    """
    conditions = [*attempt_conditions(f), ~CACHED]
    if session.get_bind().dialect.name == "postgresql":
        stmt = (
            select(
                Attempt.deployment,
                func.min(Attempt.model),
                func.count(),
                *(
                    func.percentile_disc(p / 100).within_group(Attempt.latency_ms)
                    for p in PERCENTILES
                ),
                func.avg(Attempt.latency_ms),
                func.avg(Attempt.queued_ms),
            )
            .where(*conditions)
            .group_by(Attempt.deployment)
            .order_by(Attempt.deployment)
        )
    else:
        ranked = (
            select(
                Attempt.deployment.label("deployment"),
                Attempt.model.label("model"),
                Attempt.latency_ms.label("ms"),
                Attempt.queued_ms.label("queued"),
                func.row_number()
                .over(partition_by=Attempt.deployment, order_by=Attempt.latency_ms)
                .label("rn"),
                func.count().over(partition_by=Attempt.deployment).label("n"),
            )
            .where(*conditions)
            .subquery()
        )
        stmt = (
            select(
                ranked.c.deployment,
                func.min(ranked.c.model),
                func.max(ranked.c.n),
                *(
                    func.min(case((ranked.c.rn * 100 >= p * ranked.c.n, ranked.c.ms)))
                    for p in PERCENTILES
                ),
                func.avg(ranked.c.ms),
                func.avg(ranked.c.queued),
            )
            .group_by(ranked.c.deployment)
            .order_by(ranked.c.deployment)
        )
    return [
        (d, m, int(n), float(p50), float(p95), float(p99), float(mean), _or_none(queued))
        for d, m, n, p50, p95, p99, mean, queued in session.execute(stmt).all()
    ]


def _or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass
class FailureRow:
    kind: str  # "check" (a quality check rejected the output) or "error" (the call failed)
    name: str  # the check's kind, or the error class
    count: int
    example: str | None = None


def failure_reasons(session: Session, f: ReportFilter, limit: int = 10) -> list[FailureRow]:
    """Provider errors by class and failed checks by kind, most frequent first."""
    conditions = attempt_conditions(f)
    rows = [
        FailureRow("error", name or "unknown", int(n), example)
        for name, n, example in session.execute(
            select(Attempt.error_class, func.count(), func.min(Attempt.error_message))
            .where(*conditions, Attempt.outcome == "error")
            .group_by(Attempt.error_class)
        ).all()
    ]
    # Which check said no lives in the verdicts JSON list: unnest it in SQL, per dialect.
    check: ColumnElement[Any]
    reason: ColumnElement[Any]
    if session.get_bind().dialect.name == "postgresql":
        verdict = func.json_array_elements(Attempt.verdicts).table_valued("value").alias("v")
        check = verdict.c.value.op("->>")("check")
        reason = verdict.c.value.op("->>")("reason")
        rejected = verdict.c.value.op("->>")("passed") == "false"
    else:
        verdict = func.json_each(Attempt.verdicts).table_valued("value").alias("v")
        check = func.json_extract(verdict.c.value, "$.check")
        reason = func.json_extract(verdict.c.value, "$.reason")
        rejected = func.json_extract(verdict.c.value, "$.passed") == 0
    rows += [
        FailureRow("check", str(name), int(n), example)
        for name, n, example in session.execute(
            select(check, func.count(), func.min(reason))
            .select_from(Attempt)
            .join(verdict, ~false())
            .where(*conditions, Attempt.outcome == "check_failed", rejected)
            .group_by(check)
        ).all()
    ]
    rows.sort(key=lambda row: (-row.count, row.kind, row.name))
    return rows[:limit]


def audit_spend(session: Session, f: ReportFilter) -> tuple[int, Decimal]:
    """(calls, cost) of the audit calls (routing/audit.py): spent to measure quality, not to
    answer, so the report shows them apart from the route's saving."""
    calls, cost = session.execute(
        select(func.count(), money_sum(Attempt.cost_usd)).where(
            *attempt_conditions(f), Attempt.outcome == "audit"
        )
    ).one()
    return int(calls), money(cost)


def uses_sim(session: Session, f: ReportFilter) -> bool:
    found = session.execute(
        select(Attempt.id).where(*attempt_conditions(f), Attempt.provider == "sim").limit(1)
    ).first()
    return found is not None
