"""The command line: `batchrouter submit | worker | status | report | results | db | demo`.

Exit codes: 0 success; 1 the batch finished with failed items; 2 bad input, bad routing file,
unknown batch or wrong usage.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from batchrouter import api, cli_budget, cli_cache, cli_deferred, cli_lifecycle, cli_ops
from batchrouter.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_ITEMS,
    console,
    errors,
    fail,
)
from batchrouter.ledger.batches import UnknownBatch
from batchrouter.producers.readers import InputError
from batchrouter.routing.config import ConfigError, load_config
from batchrouter.settings import get_settings
from batchrouter.worker.publish import CONTROL_QUEUE

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Send each LLM task to the cheapest tier its rules allow; escalate what fails its checks.",
    epilog="Exit codes: 0 ok; 1 the batch ended with failed items; "
    "2 bad input, bad routing file, unknown batch or wrong usage.",
)
db_app = typer.Typer(no_args_is_help=True, help="Ledger schema.")
app.add_typer(db_app, name="db")
_fail = fail


@app.command()
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
            submitted = api.submit_batch(
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
    control: Annotated[
        bool, typer.Option(help="also take control tasks (reconcile, batch callbacks)")
    ] = True,
) -> None:
    """Run a Celery worker consuming one tier's queue (and the control queue)."""
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
            f"{queue},{CONTROL_QUEUE}" if control else queue,
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
    failed: Annotated[
        bool, typer.Option("--failed", help="list failed items with reason and last output")
    ] = False,
) -> None:
    """Items of a batch by state and by tier (or, with --failed, the dead-letter list)."""
    try:
        current = api.batch_status(batch)
        dead = api.failed_items(batch) if failed else []
    except UnknownBatch as exc:
        raise _fail(str(exc.args[0])) from None
    if format == "json":
        shown = [asdict(item) for item in dead] if failed else current.as_dict()
        print(json.dumps(shown, indent=2))
        return
    if failed:
        console.print(cli_lifecycle.failed_table(current.batch_id, dead))
        return
    from batchrouter.render import status_table, usd

    console.print(status_table(current))
    if current.state != "running":
        reason = f": {current.paused_reason}" if current.paused_reason else ""
        console.print(f"batch is {current.state}{reason}")
    limit = "unlimited" if current.budget_usd is None else usd(current.budget_usd)
    console.print(
        f"budget {limit}, spent {usd(current.spent_usd)}, "
        f"reserved {usd(max(current.reserved_usd, 0.0))}"
    )


# report, results, flower: batchrouter/cli_ops.py
cli_ops.register(app)


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


cli_lifecycle.register(app)
cli_budget.register(app)
cli_cache.register(app)
cli_deferred.register(app)


@app.command("fake-provider")
def fake_provider(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8199,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    config: Annotated[
        Path | None, typer.Option(help="YAML/JSON: latency, errors, limits, answers")
    ] = None,
) -> None:
    """Run the fake provider server (OpenAI, Anthropic and Gemini formats) for load tests."""
    from batchrouter.providers.fake_server import run_fake_provider

    run_fake_provider(port, host, str(config) if config else None)


@app.command("export-replay")
def export_replay(
    batch: Annotated[str, typer.Argument(help="batch id, id prefix or name")],
    out: Annotated[Path, typer.Option("--out", "-o", help="replay table (.jsonl or .csv)")],
    items: Annotated[
        Path | None, typer.Option(help="also write the batch's items (gold file for evaluate)")
    ] = None,
) -> None:
    """Write a batch's recorded outcomes as a replay table, to re-run it under other rules."""
    from batchrouter.ledger.db import session_scope
    from batchrouter.ledger.replay_export import export_items, export_replay_table

    try:
        with session_scope() as session:
            rows = export_replay_table(session, batch, out)
            written = export_items(session, batch, items) if items else 0
    except UnknownBatch as exc:
        raise _fail(str(exc.args[0])) from None
    errors.print(f"wrote {rows} recorded outcomes to {out}")
    if items:
        errors.print(f"wrote {written} items to {items}")


@app.command()
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

    if format not in ("table", "json", "markdown"):
        raise _fail("--format must be table, json or markdown")
    try:
        result = evaluation.evaluate_files(config, task_type, items, baselines=baselines)
    except (InputError, ConfigError, evaluation.EvaluationError) as exc:
        raise _fail(str(exc)) from None
    if format == "json":
        print(evaluation.render_json(result))
    elif format == "markdown":
        print(evaluation.render_markdown(result), end="")
    else:
        console.print(evaluation.render_table(result))
        for note in evaluation.notes(result):
            errors.print(f"note: {note}", markup=False)


def main() -> None:
    from batchrouter.ledger.db import LedgerSchemaError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except LedgerSchemaError as exc:
        fail(str(exc))
        sys.exit(EXIT_BAD_INPUT)
