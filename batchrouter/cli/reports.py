"""Reading a ledger: `report`, `results`, `export-replay`, and `evaluate` (what-if on replays)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from batchrouter.cli.common import console, errors, fail
from ledger.report_groupings import GROUPINGS

# Each command imports what it needs when it runs (the ledger, SQLAlchemy, the report code):
# `batchrouter --help` and quick commands do not pay for the rest.


def report(
    batch: Annotated[
        str | None, typer.Argument(help="batch id, id prefix or name (default: every batch)")
    ] = None,
    project: Annotated[str | None, typer.Option(help="only batches with this project tag")] = None,
    task_type: Annotated[
        str | None, typer.Option("--type", "-t", help="only batches of this task type")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="attempts from this UTC date/time (YYYY-MM-DD[THH:MM])")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="attempts up to this UTC date (inclusive) or time")
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help=f"group by {', '.join(GROUPINGS)} (repeat or comma-separate)"),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    html: Annotated[
        Path | None, typer.Option("--html", help="also write a self-contained HTML page")
    ] = None,
) -> None:
    """Cost, tokens, escalation funnel, latency and failures, with the saving against premium."""
    from ledger.batches import UnknownBatch
    from ledger.db import session_scope
    from ledger.report import parse_when, run_report
    from ledger.report_queries import ReportFilter

    if format not in ("table", "json", "csv"):
        raise fail("--format must be table, json or csv")
    groups = [name.strip() for value in by or [] for name in value.split(",") if name.strip()]
    try:
        with session_scope(readonly=True) as session:
            batch_ids: tuple[str, ...] = ()
            if batch is not None:
                from ledger.batches import find_batch

                batch_ids = (find_batch(session, batch).id,)
            built = run_report(
                session,
                ReportFilter(
                    batch_ids=batch_ids,
                    project=project,
                    task_type=task_type,
                    since=parse_when(since) if since else None,
                    until=parse_when(until, end=True) if until else None,
                ),
                groups or None,
            )
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if html is not None:
        from batchrouter.reports.html import render_html

        html.write_text(render_html(built), encoding="utf-8")
        errors.print(f"wrote the HTML report to {html}")
    if format == "json":
        from ledger.money import dumps

        print(dumps(built.as_dict()))  # money as exact decimal numbers
    elif format == "csv":
        from batchrouter.reports.terminal import report_csv

        sys.stdout.write(report_csv(built))
    else:
        from batchrouter.reports.terminal import print_report

        print_report(built, console)


def results(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write (.jsonl .csv .parquet)")],
    state: Annotated[str | None, typer.Option(help="only succeeded or failed items")] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", help="jsonl, csv or parquet (default: from --out's suffix)"),
    ] = None,
) -> None:
    """One record per item, keyed by the producer's id: state, output, tier, model, cost."""
    from ledger.batches import UnknownBatch
    from ledger.db import session_scope
    from ledger.results import ExportError, format_for, write_results

    if state not in (None, "succeeded", "failed"):
        raise fail("--state must be succeeded or failed")
    try:
        fmt = format_for(out, format)
        with session_scope(readonly=True) as session:
            count = write_results(session, batch, out, state, fmt)
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None
    except ExportError as exc:
        raise fail(str(exc)) from None
    errors.print(f"wrote {count} items to {out} ({fmt})")


def export_replay(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    out: Annotated[Path, typer.Option("--out", "-o", help="replay table (.jsonl or .csv)")],
    items: Annotated[
        Path | None, typer.Option(help="also write the batch's items (gold file for evaluate)")
    ] = None,
) -> None:
    """Write a batch's recorded outcomes as a replay table, to re-run it under other rules."""
    from ledger.batches import UnknownBatch
    from ledger.db import session_scope
    from ledger.replay_export import export_items, export_replay_table

    try:
        with session_scope(readonly=True) as session:
            rows = export_replay_table(session, batch, out)
            written = export_items(session, batch, items) if items else 0
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None
    errors.print(f"wrote {rows} recorded outcomes to {out}")
    if items:
        errors.print(f"wrote {written} items to {items}")


def evaluate(
    config: Annotated[Path, typer.Option(help="routing file (deployments: provider replay)")],
    task_type: Annotated[str, typer.Option("--type", "-t", help="task type in the routing file")],
    items: Annotated[Path, typer.Option(help="JSONL or CSV items with id, text and expected")],
    format: Annotated[str, typer.Option("--format", help="table, json or markdown")] = "table",
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="also run every model alone")
    ] = True,
) -> None:
    """Run the cascade and every single model over recorded outcomes; compare accuracy and cost."""
    from batchrouter import evaluate as evaluation
    from batchrouter.reports import evaluation as shown
    from producers.readers import InputError
    from routing.config import ConfigError

    if format not in ("table", "json", "markdown"):
        raise fail("--format must be table, json or markdown")
    try:
        result = evaluation.evaluate_files(config, task_type, items, baselines=baselines)
    except (InputError, ConfigError, evaluation.EvaluationError) as exc:
        raise fail(str(exc)) from None
    if format == "json":
        print(shown.render_json(result))
    elif format == "markdown":
        print(shown.render_markdown(result), end="")
    else:
        console.print(shown.render_table(result))
        for note in shown.notes(result):
            errors.print(f"note: {note}", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(results)
    app.command("export-replay")(export_replay)
    app.command()(evaluate)
