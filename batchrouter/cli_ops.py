"""Operations commands: `batchrouter report`, `batchrouter results`, `batchrouter flower`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from batchrouter.cli_common import console, errors, fail
from batchrouter.ledger.batches import UnknownBatch
from batchrouter.ledger.report_queries import GROUPINGS

# Flower keeps every task it has seen in memory (100,000 by default, flower#1305): a 1M-item
# batch at 25 ids a message is 40,000 messages plus escalations, so keep fewer, and keep no
# on-disk state (persistent mode re-reads it all at start).
FLOWER_MAX_TASKS = 10_000


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
    from batchrouter.ledger.db import session_scope
    from batchrouter.ledger.report import parse_when, run_report
    from batchrouter.ledger.report_queries import ReportFilter

    if format not in ("table", "json", "csv"):
        raise fail("--format must be table, json or csv")
    groups = [name.strip() for value in by or [] for name in value.split(",") if name.strip()]
    try:
        with session_scope() as session:
            batch_ids: tuple[str, ...] = ()
            if batch is not None:
                from batchrouter.ledger.batches import find_batch

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
        from batchrouter.report_html import render_html

        html.write_text(render_html(built), encoding="utf-8")
        errors.print(f"wrote the HTML report to {html}")
    if format == "json":
        print(json.dumps(built.as_dict(), indent=2))
    elif format == "csv":
        from batchrouter.render import report_csv

        sys.stdout.write(report_csv(built))
    else:
        from batchrouter.render import print_report

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
    from batchrouter.ledger.db import session_scope
    from batchrouter.ledger.results import ExportError, format_for, write_results

    if state not in (None, "succeeded", "failed"):
        raise fail("--state must be succeeded or failed")
    try:
        fmt = format_for(out, format)
        with session_scope() as session:
            count = write_results(session, batch, out, state, fmt)
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None
    except ExportError as exc:
        raise fail(str(exc)) from None
    errors.print(f"wrote {count} items to {out} ({fmt})")


def flower_command(port: int, address: str, max_tasks: int, basic_auth: str | None) -> list[str]:
    """The `celery flower` command line that `batchrouter flower` runs."""
    command = [sys.executable, "-m", "celery", "-A", "batchrouter.worker", "flower"]
    command += [f"--port={port}", f"--address={address}", f"--max_tasks={max_tasks}"]
    command += ["--persistent=False", "--purge_offline_workers=600", "--inspect_timeout=5000"]
    if basic_auth:
        command.append(f"--basic_auth={basic_auth}")
    return command


def flower(
    port: Annotated[int, typer.Option(help="HTTP port")] = 5555,
    address: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    max_tasks: Annotated[
        int, typer.Option(help="tasks Flower keeps in memory (Flower's default is 100000)")
    ] = FLOWER_MAX_TASKS,
) -> None:
    """Flower for the tier queues and workers (basic auth from $FLOWER_BASIC_AUTH, user:pass)."""
    basic_auth = os.environ.get("FLOWER_BASIC_AUTH") or None
    if basic_auth is None and not os.environ.get("FLOWER_UNAUTHENTICATED_API"):
        errors.print(
            "note: no FLOWER_BASIC_AUTH: the web UI is open and Flower's HTTP API is disabled"
        )
    command = flower_command(port, address, max_tasks, basic_auth)
    sys.stdout.flush()
    # Replace this process: signals (Ctrl-C, SIGTERM from a supervisor) go straight to Flower.
    os.execv(command[0], command)


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(results)
    app.command()(flower)
