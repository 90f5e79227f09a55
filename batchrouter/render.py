"""Terminal rendering of status and reports with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from batchrouter.ledger.batches import BatchStatus
from batchrouter.ledger.report import BatchReport


def status_table(status: BatchStatus) -> Table:
    states = ["queued", "running", "succeeded", "failed"]
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


def _usd(value: float) -> str:
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def print_report(report: BatchReport, console: Console) -> None:
    title = report.name or report.batch_id
    console.print(
        f"[bold]Batch {title}[/] ({report.task_type}): {report.items} items, "
        f"{report.succeeded} succeeded, {report.failed} failed"
        + (f", {report.pending} pending" if report.pending else "")
        + f"; {report.attempts} attempts"
    )
    tiers = Table(title="By tier (cheapest first)")
    for column in ("tier", "items in", "attempts", "cost", "resolved", "escalated", "failed"):
        tiers.add_column(column, justify="left" if column == "tier" else "right")
    for line in report.by_tier:
        tiers.add_row(
            line.tier,
            str(line.items_received),
            str(line.attempts),
            _usd(line.cost_usd),
            str(line.resolved),
            str(line.escalated),
            str(line.failed),
        )
    console.print(tiers)
    models = Table(title="By model")
    for column in (
        "tier",
        "deployment",
        "model",
        "attempts",
        "passed",
        "in tok",
        "cached",
        "out tok",
        "cost",
    ):
        models.add_column(
            column, justify="left" if column in ("tier", "deployment", "model") else "right"
        )
    for m in report.by_model:
        models.add_row(
            m.tier,
            m.deployment,
            m.model,
            str(m.attempts),
            str(m.passed),
            f"{m.input_tokens:,}",
            f"{m.cached_input_tokens:,}",
            f"{m.output_tokens:,}",
            _usd(m.cost_usd),
        )
    console.print(models)
    console.print(
        f"Total cost [bold]{_usd(report.cost_usd)}[/]; premium tier ({report.premium_tier}) alone "
        f"would have cost {_usd(report.premium_only_cost_usd)}: saving "
        f"[bold green]{_usd(report.saving_usd)} ({report.saving_pct:.1f}%)[/]"
    )
    if report.with_expected:
        console.print(
            f"Accuracy against the expected answers: {report.correct}/{report.with_expected} "
            f"({100 * report.correct / report.with_expected:.1f}%)"
        )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
