"""`batchrouter deferred poll|status`: the provider batches of deferred tiers.

Beat runs the same poll every BATCHROUTER_DEFERRED_POLL_INTERVAL seconds; the command is for a
cron job, a host without beat, or an operator who wants the results now.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from batchrouter.cli.common import console, errors

deferred_app = typer.Typer(help="Provider batch APIs behind deferred tiers.", no_args_is_help=True)


@deferred_app.command("poll")
def poll(
    now: Annotated[
        bool, typer.Option("--now", help="send staged items now instead of after collect_s")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="keep polling until no provider batch is open, no item is staged, and every "
            "batch that used a deferred tier has finished (and while another poll holds the "
            "lock, wait for it)",
        ),
    ] = False,
    every: Annotated[float, typer.Option(help="seconds between polls with --wait", min=0.1)] = 30,
    grace: Annotated[
        float | None,
        typer.Option(help="seconds before a batch whose submit was cut off is looked for"),
    ] = None,
) -> None:
    """Form, submit, poll and ingest provider batches (one step each, or until done)."""
    from worker.deferred.poller import poll_once

    while True:
        summary = poll_once(force=now, submit_grace_s=grace)
        if summary.locked_by is not None:
            # One poll at a time per ledger (beat's, or another operator's): not an error.
            errors.print(
                f"deferred: another poll holds the lock ({summary.locked_by})"
                + ("; waiting" if wait else ""),
                markup=False,
                soft_wrap=True,
            )
            if not wait:
                return
            time.sleep(every)
            continue
        settled = ", ".join(f"{n} {state}" for state, n in sorted(summary.settled.items()))
        errors.print(
            f"deferred: {summary.formed} formed, {summary.submitted} submitted, "
            f"{summary.ended} ended, {summary.ingested} ingested"
            + (f" ({settled})" if settled else "")
            + f"; {summary.open} open, {summary.staged} items staged, "
            + f"{summary.unfinished} batches using deferred tiers unfinished",
            soft_wrap=True,
        )
        for problem in summary.errors:
            errors.print(f"  provider error: {problem}", markup=False, soft_wrap=True)
        idle = summary.open == 0 and summary.staged == 0 and summary.unfinished == 0
        if not wait or idle:
            return
        time.sleep(every)


@deferred_app.command("status")
def status(
    limit: Annotated[int, typer.Option(help="newest provider batches to show", min=1)] = 20,
) -> None:
    """The newest provider batches: state, provider status, size."""
    from rich.table import Table
    from sqlalchemy import select

    from ledger.db import session_scope
    from ledger.models import ProviderBatch

    with session_scope(readonly=True) as session:
        rows = session.execute(
            select(ProviderBatch).order_by(ProviderBatch.created_at.desc()).limit(limit)
        ).scalars()
        table = Table("id", "batch", "tier", "deployment", "state", "provider status", "requests",
                      "provider id", "error")  # fmt: skip
        for pb in rows:
            table.add_row(
                pb.id[:12], pb.batch_id[:12], pb.tier, pb.deployment, pb.state,
                pb.provider_status or "", str(pb.request_count), pb.provider_id or "",
                (pb.error or "")[:60],
            )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(deferred_app, name="deferred")
