"""Terminal rendering of status and reports with rich, and a report's CSV rows."""

from __future__ import annotations

import csv
import io
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # `status` renders a table without loading the report code
    from ledger.batches import BatchStatus
    from ledger.quality import Quality
    from ledger.report import BatchReport, GroupLine, Report


def status_table(status: BatchStatus) -> Table:
    states = ["queued", "running", "succeeded", "failed"]
    # Shown only when a batch has them: duplicates waiting for their leader (response cache),
    # items handed to a provider batch API, and items a cancel dropped.
    states += [s for s in ("waiting", "deferred", "cancelled") if status.by_state.get(s)]
    table = Table(
        title=f"batch {status.batch_id} ({status.task_type}): {status.done}/{status.total} done"
        + (" - finished" if status.finished else "")
    )
    table.add_column("tier")
    for state in states:
        table.add_column(state, justify="right")
    tiers = sorted({tier for tier, _ in status.by_tier_state})
    for tier in tiers:
        table.add_row(tier, *(str(status.by_tier_state.get((tier, s), 0)) for s in states))
    table.add_row("all", *(str(status.by_state.get(s, 0)) for s in states), style="bold")
    return table


def usd(value: Decimal | float | None) -> str:
    """Dollars for people: 4 places (2 from $100), 3 significant figures below a cent. Money
    is Decimal (ledger/money.py), rounded half up as on paper ($0.02085 shows as $0.0209),
    never through a float."""
    if value is None:
        return "-"
    amount = value if isinstance(value, Decimal) else Decimal(repr(value))
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    if size >= 100:
        places = 2
    elif size >= Decimal("0.01") or size == 0:
        places = 4
    else:  # per-item and per-call costs are fractions of a cent: three significant figures
        places = min(12, 2 - math.floor(math.log10(size)))
    shown = size.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{sign}${shown:,.{places}f}"


def _table(title: str, columns: list[str], left: int = 1) -> Table:
    """A table whose first `left` columns are labels and the rest right-aligned figures."""
    table = Table(title=title)
    for index, column in enumerate(columns):
        if index < left:
            table.add_column(column, justify="left", no_wrap=True)
        else:
            table.add_column(column, justify="right")
    return table


def _tiers_table(report: BatchReport | Report) -> Table:
    table = _table(
        "By tier (cheapest first): the escalation funnel",
        ["tier", "items in", "attempts", "cost", "resolved", "escalated", "failed", "in progress"],
    )
    for line in report.by_tier:
        table.add_row(
            line.tier,
            str(line.items_received),
            str(line.attempts),
            usd(line.cost_usd),
            str(line.resolved),
            str(line.escalated),
            str(line.failed),
            str(line.in_progress),
        )
    return table


def _uses_levers(report: BatchReport | Report) -> bool:
    # The levers table only when the selection used a lever: older ledgers keep their output.
    return bool(report.cache_hits or report.deferred_calls)


def _models_table(report: BatchReport | Report) -> Table:
    columns = ["tier", "deployment", "model", "attempts", "passed", "in tok", "cached"]
    columns += ["cache wr", "out tok", "reasoning", "cost"]
    table = _table("By model (tokens: billed calls only; reasoning is part of out)", columns, 3)
    for m in report.by_model:
        table.add_row(
            m.tier,
            m.deployment,
            m.model,
            str(m.attempts),
            str(m.passed),
            f"{m.input_tokens:,}",
            f"{m.cached_input_tokens:,}",
            f"{m.cache_write_tokens:,}",
            f"{m.output_tokens:,}",
            f"{m.reasoning_tokens:,}",
            usd(m.cost_usd),
        )
    return table


def unconfirmed_line(report: BatchReport | Report) -> str | None:
    """The part of the cost billed at an estimate nobody confirmed (report_levers.UNCONFIRMED)."""
    if not report.unconfirmed_calls:
        return None
    return (
        f"of which {usd(report.unconfirmed_cost_usd)} estimated, unconfirmed: "
        f"{report.unconfirmed_calls:,} failed calls (timeouts, calls in flight when a worker "
        "stopped) counted at their estimate; the provider may not have billed them"
    )


def _groups_table(report: Report) -> Table:
    by = report.group_by
    columns = [*by, "items", "calls", "ok", "errors", "in tok", "out tok", "cost"]
    columns += ["per ok", "premium"]
    table = _table(f"By {', '.join(by)}", columns, left=len(by))
    for g in report.groups:
        table.add_row(
            *(g.key.get(name) or "-" for name in by),
            str(g.items),
            str(g.attempts),
            str(g.succeeded),
            str(g.errors),
            f"{g.input_tokens:,}",
            f"{g.output_tokens:,}",
            usd(g.cost_usd),
            usd(g.cost_per_succeeded_usd),
            usd(g.premium_only_cost_usd),
        )
    return table


def _levers_table(report: Report) -> Table:
    """Cache and deferral per group (a table of its own: the groups table is wide already)."""
    by = report.group_by
    routing = any(g.routing_saving_usd is not None for g in report.groups)
    columns = [*by, "cache hits", "cache saved", "deferred", "deferral saved"]
    table = _table(
        f"Cost levers by {', '.join(by)}", columns + (["routing saved"] if routing else []), len(by)
    )
    for g in report.groups:
        table.add_row(
            *(g.key.get(name) or "-" for name in by),
            str(g.cache_hits),
            usd(g.cache_saving_usd),
            str(g.deferred_calls),
            usd(g.deferral_saving_usd),
            *([usd(g.routing_saving_usd)] if routing else []),
        )
    return table


def saving_split(report: BatchReport | Report) -> str:
    """Where the saving came from, in one line (report_levers.py defines the three parts)."""
    routing = usd(report.routing_saving_usd)
    if report.routing_saving_usd < 0:
        routing += " (negative: escalations cost more than premium-only)"
    audit = ""
    if report.audit_calls:
        audit = f", audit -{usd(report.audit_cost_usd)} ({report.audit_calls:,} audit calls)"
    return (
        f"routing {routing}, deferral {usd(report.deferral_saving_usd)} "
        f"({report.deferred_calls:,} deferred calls), cache {usd(report.cache_saving_usd)} "
        f"({report.cache_hits:,} cache hits){audit}"
    )


def print_report(report: BatchReport | Report, console: Console) -> None:
    from ledger.report import Report

    if isinstance(report, Report):
        console.print(
            f"[bold]Report: {report.title}[/]: {report.batches} batches, {report.items} items, "
            f"{report.succeeded} succeeded, {report.failed} failed"
            + (f", {report.pending} pending" if report.pending else "")
            + f"; {report.attempts} attempts"
        )
        console.print(
            f"Tokens: {report.input_tokens:,} in ({report.cached_input_tokens:,} cached, "
            f"{report.cache_write_tokens:,} cache writes), {report.output_tokens:,} out "
            f"({report.reasoning_tokens:,} reasoning); cost per succeeded item "
            f"{usd(report.cost_per_succeeded_usd)}"
        )
    else:
        console.print(
            f"[bold]Batch {report.name or report.batch_id}[/] ({report.task_type}): "
            f"{report.items} items, {report.succeeded} succeeded, {report.failed} failed"
            + (f", {report.pending} pending" if report.pending else "")
            + f"; {report.attempts} attempts"
        )
    console.print(_tiers_table(report))
    console.print(_models_table(report))
    if isinstance(report, Report):
        if report.group_by != ["tier"]:
            console.print(_groups_table(report))
        if _uses_levers(report):
            console.print(_levers_table(report))
        latency = _table(
            "Latency per deployment (ms): the provider's, and time queued in the worker",
            ["deployment", "model", "calls"],
            left=2,
        )
        for column in ("p50", "p95", "p99", "mean", "queued (mean)"):
            latency.add_column(column, justify="right")
        for line in report.latency:
            queued = line.queued_mean_ms
            latency.add_row(
                line.deployment,
                line.model,
                str(line.calls),
                *(f"{v:,.0f}" for v in (line.p50_ms, line.p95_ms, line.p99_ms, line.mean_ms)),
                "-" if queued is None else f"{queued:,.0f}",
            )
        console.print(latency)
        if report.failure_reasons:
            failures = _table("Top failure reasons", ["kind", "name", "count", "share"], left=2)
            failures.add_column("example", justify="left", overflow="fold")
            for reason in report.failure_reasons:
                failures.add_row(
                    reason.kind,
                    reason.name,
                    str(reason.count),
                    f"{reason.share_pct:.1f}%",
                    (reason.example or "")[:80],
                )
            console.print(failures)
    console.print(
        f"Total cost [bold]{usd(report.cost_usd)}[/]; premium tier ({report.premium_tier}) alone "
        f"would have cost {usd(report.premium_only_cost_usd)}: saving "
        f"[bold green]{usd(report.saving_usd)} ({report.saving_pct:.1f}%)[/]"
    )
    if (unconfirmed := unconfirmed_line(report)) is not None:
        console.print(f"Total cost {unconfirmed}", highlight=False)
    console.print(f"Where the saving came from: {saving_split(report)}", highlight=False)
    if report.with_expected:
        console.print(
            f"Accuracy against the expected answers: {report.correct}/{report.with_expected} "
            f"({100 * report.correct / report.with_expected:.1f}%)"
        )
    quality = getattr(report, "quality", None)
    if quality is not None:
        print_quality(quality, console)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")


def print_quality(quality: Quality, console: Console) -> None:
    """Per rung, the measured share of right accepted answers with its 95% interval."""
    table = _table(
        "Quality of accepted answers (by `expected`, else by the audit rung; 95% Wilson interval)",
        ["rung", "accepted", "judged", "right", "share", "95% interval"],
    )
    for line in quality.rungs:
        share = "-" if line.share is None else f"{100 * line.share:.1f}%"
        interval = "-"
        if line.low is not None and line.high is not None:
            interval = f"{100 * line.low:.1f}% - {100 * line.high:.1f}%"
        if line.below_target:
            interval += " BELOW TARGET"
        name = line.tier + (" (reference)" if line.reference else "")
        table.add_row(name, str(line.accepted), str(line.sampled), str(line.right), share, interval)
    console.print(table)
    parts = []
    if quality.estimated_accuracy is not None:
        parts.append(f"estimated accuracy {100 * quality.estimated_accuracy:.1f}%")
    if quality.quality_target is not None:
        parts.append(f"target {100 * quality.quality_target:.1f}%")
    if quality.audit_rate is not None:
        parts.append(
            f"audit {100 * quality.audit_rate:g}% to {quality.audit_tier}: "
            f"{quality.audit_calls} calls, {usd(quality.audit_cost_usd)} (in the total cost)"
        )
    if parts:
        console.print("Quality: " + "; ".join(parts), highlight=False)
    if quality.flagged:
        console.print(
            f"[bold red]Below the quality target:[/] {', '.join(quality.flagged)}", highlight=False
        )


CSV_METRICS = [
    "items",
    "attempts",
    "succeeded",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_per_succeeded_usd",
    "premium_only_cost_usd",
    "saving_usd",
    # the cost levers (appended, so the columns above keep their places)
    "routing_saving_usd",
    "deferral_saving_usd",
    "cache_saving_usd",
    "cache_hits",
    "deferred_calls",
    "cache_write_tokens",
    "reasoning_tokens",
    "unconfirmed_calls",
    "unconfirmed_cost_usd",
]


def report_csv(report: Report) -> str:
    """The report's groups as CSV (one row per group, then a `total` row), for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*report.group_by, *CSV_METRICS])
    # Group keys are names producers chose (projects, batch names, models): never formulas.
    from ledger.results import spreadsheet_safe

    safe = spreadsheet_safe

    def cells(line: GroupLine | dict[str, Any]) -> list[Any]:
        values = line if isinstance(line, dict) else line.__dict__
        return [_cell(values.get(m)) for m in CSV_METRICS]

    for group in report.groups:
        keys = [safe(group.key.get(name) or "") for name in report.group_by]
        writer.writerow([*keys, *(safe(cell) for cell in cells(group))])
    total = {
        "items": report.items,
        "attempts": report.attempts,
        "succeeded": report.succeeded,
        "errors": sum(g.errors for g in report.groups),
        "input_tokens": report.input_tokens,
        "cached_input_tokens": report.cached_input_tokens,
        "output_tokens": report.output_tokens,
        "cost_usd": report.cost_usd,
        "cost_per_succeeded_usd": report.cost_per_succeeded_usd,
        "premium_only_cost_usd": report.premium_only_cost_usd,
        "saving_usd": report.saving_usd,
        "routing_saving_usd": report.routing_saving_usd,
        "deferral_saving_usd": report.deferral_saving_usd,
        "cache_saving_usd": report.cache_saving_usd,
        "cache_hits": report.cache_hits,
        "deferred_calls": report.deferred_calls,
        "cache_write_tokens": report.cache_write_tokens,
        "reasoning_tokens": report.reasoning_tokens,
        "unconfirmed_calls": report.unconfirmed_calls,
        "unconfirmed_cost_usd": report.unconfirmed_cost_usd,
    }
    writer.writerow(["total", *([""] * (len(report.group_by) - 1)), *cells(total)])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell: money exact (Decimal, no trailing zeros), other floats to 10 places."""
    from ledger.money import plain

    if value is None:
        return ""
    if isinstance(value, Decimal):
        return plain(value)
    return round(value, 10) if isinstance(value, float) else value
