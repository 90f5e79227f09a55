"""Commands that steer running batches: cancel, pause, resume, retry, reconcile."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from batchrouter.cli.common import errors, fail

if TYPE_CHECKING:  # the ledger is imported when a command runs, not by `--help`
    from rich.table import Table
    from sqlalchemy.orm import Session

    from ledger.lifecycle import FailedItem

BatchArg = Annotated[str, typer.Argument(help="batch id, id prefix or name")]


def _publish(by_tier: dict[str, list[int]]) -> int:
    from routing.settings import get_settings
    from worker.publish import publish_items

    chunk = get_settings().chunk_size
    for tier, ids in by_tier.items():
        publish_items(ids, tier, chunk)
    return sum(len(ids) for ids in by_tier.values())


T = TypeVar("T")


def _on_batch(change: Callable[[Session], T]) -> T:
    """Run one ledger change in its own transaction; an unknown batch exits with code 2."""
    from ledger.batches import UnknownBatch
    from ledger.db import session_scope

    try:
        with session_scope() as session:
            return change(session)
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None


def _ledger():  # type: ignore[no-untyped-def]
    from ledger import lifecycle

    return lifecycle


def cancel(batch: BatchArg) -> None:
    """Cancel a batch: its queued items are dropped, items already running finish."""
    dropped = _on_batch(lambda session: _ledger().cancel_batch(session, batch))
    errors.print(f"batch cancelled: {dropped} queued items dropped")


def pause(
    batch: BatchArg,
    reason: Annotated[str, typer.Option(help="shown by status")] = "paused by an operator",
) -> None:
    """Pause a batch: workers leave its queued items alone until it is resumed."""
    changed = _on_batch(lambda session: _ledger().pause_batch(session, batch, reason))
    errors.print("batch paused" if changed else "batch was not running; nothing changed")


def resume(batch: BatchArg) -> None:
    """Resume a paused batch and put its queued items back on their queues."""
    waiting = _on_batch(lambda session: _ledger().resume_batch(session, batch))
    errors.print(f"batch resumed: {_publish(waiting)} queued items republished")


def retry(
    batch: BatchArg,
    failed: Annotated[bool, typer.Option("--failed", help="re-run the failed items")] = False,
) -> None:
    """Re-run a batch's failed items on the tier where they failed, with a fresh attempt cap."""
    if not failed:
        raise fail("say what to retry: --failed")
    again = _on_batch(lambda session: _ledger().retry_failed(session, batch))
    errors.print(f"{_publish(again)} failed items queued again")


def reconcile(
    running_timeout: Annotated[
        float | None,
        typer.Option(
            help="seconds before an unacked message, or a claim made without a lease, counts "
            "as dead (default: VT); leased claims are taken over when their lease lapses"
        ),
    ] = None,
    grace: Annotated[float, typer.Option(help="seconds a queued item may wait unseen")] = 30.0,
) -> None:
    """Put back on the broker every item the ledger says is waiting but no message carries."""
    from worker.reconcile import reconcile as run

    result = run(running_timeout, grace)
    checked = "" if result.broker_checked else " (broker contents not inspectable: by age only)"
    errors.print(
        f"{result.requeued_stale} stale claims requeued; republished {result.republished}{checked}"
    )


def failed_table(batch_id: str, items: list[FailedItem]) -> Table:
    from rich.table import Table

    table = Table(title=f"batch {batch_id}: {len(items)} failed items")
    for column in ("id", "tier", "attempts", "reason", "last output"):
        table.add_column(column, overflow="fold")
    for item in items:
        output = (item.last_output or "").replace("\n", " ")
        table.add_row(
            item.external_id,
            item.tier,
            str(item.attempts),
            item.error or "",
            output if len(output) <= 80 else output[:77] + "...",
        )
    return table


def register(app: typer.Typer) -> None:
    for command in (cancel, pause, resume, retry, reconcile):
        app.command()(command)
