"""Celery tasks. Names say what they do; arguments are ids, never item text.

What a task returns reaches Flower (the task-succeeded event carries it) and any result
backend, so tasks return counts only. The per-call facts metrics need (model, cost, tokens,
latency) are counted here, in the process that ran the task, and never leave it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict

from celery.exceptions import Reject
from celery.signals import worker_init, worker_shutdown, worker_shutting_down

from worker import (
    loop,
    metrics,  # also registers the Prometheus signal handlers
)
from worker.app import app
from worker.pipeline import HandBack, process_chunk

log = logging.getLogger("batchrouter.worker")


@app.task(name="batchrouter.attempt", bind=True, acks_late=True)
def attempt(self, item_ids: list[int], tier: str) -> dict:  # type: ignore[no-untyped-def]
    """Run one attempt round for a chunk of items on `tier`; see worker/pipeline.py."""
    try:
        summary = process_chunk(item_ids, tier, token=self.request.id)
    except HandBack as stopped:
        raise Reject(str(stopped), requeue=True) from None
    # vars(), not asdict(): metrics only read it, and asdict deep-copies every call's facts
    # (1.3 ms of CPU for a chunk of 100 calls).
    metrics.record_chunk(vars(summary))
    return summary.counts()


@app.task(name="batchrouter.reconcile", ignore_result=True)
def reconcile_task(running_timeout_s: float | None = None, queued_grace_s: float = 30.0) -> dict:
    """Re-queue items the ledger says are waiting but no message carries (see reconcile.py)."""
    from worker.reconcile import reconcile

    return asdict(reconcile(running_timeout_s, queued_grace_s))


@app.task(name="batchrouter.take_over", ignore_result=True)
def take_over_task() -> dict:
    """The lease check: re-queue the running items of workers whose lease lapsed."""
    from worker.reconcile import take_over_lapsed_claims

    return take_over_lapsed_claims()


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


@worker_shutting_down.connect
def _hand_back_when_time_is_up(**_: object) -> None:
    """A stopping worker (SIGTERM or SIGQUIT) finishes what it can within
    BATCHROUTER_SOFT_SHUTDOWN_TIMEOUT seconds, then hands the rest back: its chunks stop,
    the call outcomes it has are written, and their messages return to the queue. Celery's
    own warm shutdown would wait for every running task however long it takes."""
    from routing.settings import get_settings

    def time_is_up() -> None:
        stopped = loop.cancel_running()
        if stopped:
            log.warning("soft shutdown: %d chunks handed back unfinished", stopped)
        try:
            from worker.journal import current_journal

            async def flush() -> None:
                await current_journal().flush()

            loop.run(flush(), timeout=10)
        except Exception:
            log.exception("soft shutdown: the journal could not be flushed")

    timer = threading.Timer(float(get_settings().soft_shutdown_timeout), time_is_up)
    timer.daemon = True
    timer.start()


@worker_shutdown.connect
def _close_connections(**_: object) -> None:
    """Close pooled provider connections when the worker stops, and end its lease: what it
    still holds can be taken over at the next lease check instead of after the lease."""
    from worker.lease import release_current

    loop.close()
    release_current()
