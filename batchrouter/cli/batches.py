"""`batchrouter submit` and `batchrouter status`: put a batch in, watch it come out."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from batchrouter.cli.common import EXIT_FAILED_ITEMS, EXIT_INTERRUPTED, console, errors, fail

# The commands import the ledger, the producers and the API when they run: `status` is polled
# by scripts and must not load the submit path (issue 19: status in a blink).


def submit(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV, one item per line/row")],
    task_type: Annotated[str, typer.Option("--type", "-t", help="task type in the routing file")],
    config: Annotated[
        Path | None, typer.Option(help="routing file (default $BATCHROUTER_CONFIG)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a name to find the batch by")] = None,
    project: Annotated[str | None, typer.Option(help="project tag for reports")] = None,
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="USD this batch may spend; it pauses there", min=0),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="show progress until the batch ends")
    ] = False,
    on_done_url: Annotated[
        str | None, typer.Option(help="POST a JSON notice here when the batch ends")
    ] = None,
    on_done_task: Annotated[
        str | None, typer.Option(help="Celery task to send when the batch ends")
    ] = None,
) -> None:
    """Register FILE as a batch and enqueue its items on the entry tier; print the batch id."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from ledger.errors import DuplicateBatchName
    from producers.readers import InputError
    from producers.submit import submit_batch
    from routing.config import ConfigError

    # One bar per stage (read and check, ledger insert, publish), on stderr; rich draws
    # nothing when stderr is not a terminal.
    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
    ) as bar:
        bars: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = bar.add_task(stage, total=total)
            bar.update(bars[stage], completed=done)

        try:
            submitted = submit_batch(
                file,
                task_type,
                config=config,
                name=name,
                project=project,
                budget_usd=budget,
                callback_url=on_done_url,
                callback_task=on_done_task,
                progress=progress,
            )
        except (InputError, ConfigError, DuplicateBatchName) as exc:
            raise fail(str(exc)) from None
    errors.print(
        f"submitted {submitted.items} items in {submitted.messages} messages "
        f"to tier {submitted.entry_tier}"
    )
    print(submitted.batch_id, flush=True)
    if wait:
        from batchrouter.reports.progress import failed_hint, follow_batch, interrupted_hint

        try:
            status = follow_batch(submitted.batch_id, console=errors)
        except KeyboardInterrupt:
            errors.print(interrupted_hint(submitted.batch_id), markup=False, highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if status.failed:
            errors.print(failed_hint(status), markup=False, highlight=False)
            raise typer.Exit(EXIT_FAILED_ITEMS)


def status(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    failed: Annotated[
        bool, typer.Option("--failed", help="list failed items with reason and last output")
    ] = False,
) -> None:
    """Items of a batch by state and by tier (or, with --failed, the dead-letter list)."""
    from ledger.errors import UnknownBatch

    try:
        current = None if failed else _read_status(batch)
        dead = []
        if current is None:
            from ledger.batches import batch_status
            from ledger.db import session_scope

            with session_scope() as session:
                current = batch_status(session, batch)
                if failed:
                    from ledger.lifecycle import failed_items

                    dead = failed_items(session, batch)
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None
    if failed:
        if format == "json":
            from ledger.money import dumps

            print(dumps([asdict(item) for item in dead]))  # money as exact decimal numbers
            return
        from batchrouter.cli import lifecycle

        console.print(lifecycle.failed_table(current.batch_id, dead))
        return
    from batchrouter.cli.quick import show_status

    show_status(current, format, console)


def _read_status(batch: str):  # type: ignore[no-untyped-def]
    """A PostgreSQL ledger answers through psycopg alone (ledger/status.py): no SQLAlchemy to
    load. None for any other ledger."""
    from ledger.status import read_status
    from routing.settings import get_settings

    return read_status(get_settings().resolved_database_url(), batch)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(status)
