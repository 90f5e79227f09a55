"""A live progress bar for a running batch, read from the ledger."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batchrouter.api import wait_for_batch
from ledger.batches import BatchStatus


def follow_batch(batch_id: str, console: Console, timeout: float | None = None) -> BatchStatus:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"batch {batch_id[:8]}", total=None, detail="")

        def show(status: BatchStatus) -> None:
            waiting: dict[str, int] = {}
            for (tier, state), count in status.by_tier_state.items():
                if state in ("queued", "running"):
                    waiting[tier] = waiting.get(tier, 0) + count
            detail = f"ok {status.succeeded} failed {status.failed}"
            if waiting:
                detail += " | waiting " + " ".join(f"{t}:{n}" for t, n in sorted(waiting.items()))
            # In the ledger, not the broker: staged or inside a provider batch (deferred tiers),
            # and duplicates that settle with the first copy of their text.
            for state in ("deferred", "waiting"):
                if status.by_state.get(state):
                    detail += f" | {state} {status.by_state[state]}"
            bar.update(task, total=status.total, completed=status.done, detail=detail)

        return wait_for_batch(batch_id, timeout=timeout, on_progress=show)
