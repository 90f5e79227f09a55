"""The small public Python API: submit a batch, watch it, read its report and results."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ledger.batches import BatchStatus
from ledger.batches import batch_status as _batch_status
from ledger.db import session_scope
from ledger.lifecycle import FailedItem
from ledger.lifecycle import failed_items as _failed_items
from ledger.report import BatchReport, build_report
from ledger.results import write_results_jsonl
from producers.submit import Submitted, submit_batch


def batch_status(batch: str) -> BatchStatus:
    """Items of a batch by state and by tier."""
    with session_scope(readonly=True) as session:
        return _batch_status(session, batch)


def batch_report(batch: str) -> BatchReport:
    """Cost by tier and model, escalations, and the saving against the premium tier alone."""
    with session_scope(readonly=True) as session:
        return build_report(session, batch)


def failed_items(batch: str) -> list[FailedItem]:
    """The dead-letter view: failed items with their reason and last output."""
    with session_scope(readonly=True) as session:
        return _failed_items(session, batch)


def export_results(batch: str, out: str | Path, state: str | None = None) -> int:
    """Write one JSON line per item (the producer's id, output, tier, model, cost); return count."""
    with session_scope(readonly=True) as session:
        return write_results_jsonl(session, batch, Path(out), state)


def wait_for_batch(
    batch: str,
    *,
    timeout: float | None = None,
    poll: float = 0.5,
    on_progress: Callable[[BatchStatus], None] | None = None,
) -> BatchStatus:
    """Poll the ledger until every item of the batch is succeeded or failed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = batch_status(batch)
        if on_progress is not None:
            on_progress(status)
        if status.finished:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch} not finished after {timeout} s: {status.by_state}")
        time.sleep(poll)


__all__ = [
    "BatchReport",
    "BatchStatus",
    "Submitted",
    "batch_report",
    "batch_status",
    "export_results",
    "failed_items",
    "submit_batch",
    "wait_for_batch",
]
