"""Celery tasks. Names say what they do; arguments are ids, never item text.

What a task returns reaches Flower (the task-succeeded event carries it) and any result
backend, so tasks return counts only. The per-call facts metrics need (model, cost, tokens,
latency) are counted here, in the process that ran the task, and never leave it.
"""

from __future__ import annotations

from dataclasses import asdict

from celery.signals import worker_init, worker_shutdown

from worker import (
    loop,
    metrics,  # also registers the Prometheus signal handlers
)
from worker.app import app
from worker.pipeline import process_chunk


@app.task(name="batchrouter.attempt", bind=True, acks_late=True)
def attempt(self, item_ids: list[int], tier: str) -> dict:  # type: ignore[no-untyped-def]
    """Run one attempt round for a chunk of items on `tier`; see worker/pipeline.py."""
    summary = process_chunk(item_ids, tier, token=self.request.id)
    metrics.record_chunk(asdict(summary))
    return summary.counts()


@app.task(name="batchrouter.reconcile", ignore_result=True)
def reconcile_task(running_timeout_s: float | None = None, queued_grace_s: float = 30.0) -> dict:
    """Re-queue items the ledger says are waiting but no message carries (see reconcile.py)."""
    from worker.reconcile import reconcile

    return asdict(reconcile(running_timeout_s, queued_grace_s))


@app.task(name="batchrouter.deferred_poll", ignore_result=True)
def deferred_poll_task(force: bool = False) -> dict:
    """Walk every provider batch of the deferred tiers one step (see worker/deferred/)."""
    from worker.deferred.poller import poll_once

    summary = poll_once(force=force)
    metrics.record_poll(asdict(summary))
    return summary.counts()


@worker_init.connect
def _install_middleware(**_: object) -> None:
    """Deployment statistics, budgets (and the rate limiter) around every provider call of
    this worker; forked pool processes inherit the stack."""
    from worker import stack
    from worker.middleware import install

    install(*stack.default_middleware())


@worker_shutdown.connect
def _close_connections(**_: object) -> None:
    """Close pooled provider connections when the worker stops."""
    loop.close()
