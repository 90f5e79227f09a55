"""The command line: `batchrouter submit | worker | status | report | results | db | demo`.

Exit codes: 0 success; 1 the batch finished with failed items; 2 bad input, bad routing file,
unknown batch or wrong usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from batchrouter import api
from batchrouter.ledger.batches import UnknownBatch
from batchrouter.producers.readers import InputError
from batchrouter.routing.config import ConfigError, load_config
from batchrouter.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Ledger schema.")
app.add_typer(db_app, name="db")
# Piped output (CI logs, files) gets a width that fits the report's tables.
console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

EXIT_FAILED_ITEMS = 1
EXIT_BAD_INPUT = 2


def _fail(message: str) -> typer.Exit:
    # Text, not markup: a message may hold brackets ("[REDACTED]", "[a, b]").
    errors.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV, one item per line/row")],
    task_type: Annotated[str, typer.Option("--type", "-t", help="task type in the routing file")],
    config: Annotated[
        Path | None, typer.Option(help="routing file (default $BATCHROUTER_CONFIG)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a name to find the batch by")] = None,
    project: Annotated[str | None, typer.Option(help="project tag for reports")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="show progress until the batch ends")
    ] = False,
) -> None:
    """Register FILE as a batch and enqueue its items on the entry tier; print the batch id."""
    try:
        submitted = api.submit_batch(file, task_type, config=config, name=name, project=project)
    except (InputError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    errors.print(
        f"submitted {submitted.items} items in {submitted.messages} messages "
        f"to tier {submitted.entry_tier}"
    )
    print(submitted.batch_id, flush=True)
    if wait:
        from batchrouter.progress import follow_batch

        status = follow_batch(submitted.batch_id, console=errors)
        if status.failed:
            raise typer.Exit(EXIT_FAILED_ITEMS)


@app.command()
def worker(
    tier: Annotated[str, typer.Option(help="tier name or position (0 = cheapest)")],
    config: Annotated[Path | None, typer.Option(help="routing file naming the tiers")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="task slots (default $BATCHROUTER_CONCURRENCY)")
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: threads, prefork, solo")] = "threads",
    loglevel: Annotated[str, typer.Option(help="log level")] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="worker name (default <tier>@%h)")] = None,
) -> None:
    """Run a Celery worker consuming one tier's queue."""
    settings = get_settings()
    try:
        queue = load_config(config or settings.config).tier_by_ref(tier).name
    except (ConfigError, KeyError) as exc:
        raise _fail(str(exc)) from None
    from batchrouter.worker.app import app as celery_app

    celery_app.worker_main(
        [
            "worker",
            "-Q",
            queue,
            "-n",
            hostname or f"{queue}@%h",
            "-P",
            pool,
            "-c",
            str(concurrency or settings.concurrency),
            "-E",
            "--loglevel",
            loglevel,
        ]
    )


@app.command()
def status(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Items of a batch by state and by tier."""
    try:
        current = api.batch_status(batch)
    except UnknownBatch as exc:
        raise _fail(str(exc.args[0])) from None
    if format == "json":
        print(json.dumps(current.as_dict(), indent=2))
        return
    from batchrouter.render import status_table

    console.print(status_table(current))


@app.command()
def report(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Cost by tier and model, escalations, and the saving against the premium tier alone."""
    try:
        built = api.batch_report(batch)
    except UnknownBatch as exc:
        raise _fail(str(exc.args[0])) from None
    if format == "json":
        print(json.dumps(built.as_dict(), indent=2))
        return
    from batchrouter.render import print_report

    print_report(built, console)


@app.command()
def results(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write")],
    state: Annotated[str | None, typer.Option(help="only succeeded or failed items")] = None,
) -> None:
    """Write one JSON line per item: producer id, output, tier, model, state, attempts, cost."""
    if state not in (None, "succeeded", "failed"):
        raise _fail("--state must be succeeded or failed")
    try:
        count = api.export_results(batch, out, state)
    except UnknownBatch as exc:
        raise _fail(str(exc.args[0])) from None
    errors.print(f"wrote {count} items to {out}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the ledger's tables (Alembic, to the newest revision)."""
    from batchrouter.ledger.db import upgrade_schema

    upgrade_schema()
    errors.print("ledger schema is up to date")


@app.command()
def demo(
    items: Annotated[int, typer.Option(help="how many example tickets to run")] = 600,
) -> None:
    """Run the example tickets through three tiers on the embedded broker and SQLite ledger."""
    from batchrouter.demo import run_demo

    raise typer.Exit(run_demo(items, console))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
