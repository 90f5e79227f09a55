"""The Celery app: one queue per tier, ids-only messages, at-least-once delivery settings.

`celery -A worker worker -Q tier0` and `batchrouter worker --tier 0` both use it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.app import trace
from celery.signals import after_setup_logger

from routing.settings import Settings, get_settings
from worker import kombu_fixes
from worker.connections import redis_socket_options
from worker.queues import CONTROL_QUEUE

kombu_fixes.install()  # a Redis restart must not end the worker process (worker/kombu_fixes.py)

# Celery logs every task's return value at INFO; ours are counts the pipeline logs itself
# already. Keep the line, drop the value.
trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"


CALLS_LOGGER = "batchrouter.calls"  # one DEBUG line per provider call (worker/attempt.py)
# Libraries that log each HTTP request at INFO: a per-call line, ~140 bytes an item.
PER_REQUEST_LOGGERS = ("httpx",)


def configure_call_logs(settings: Settings | None = None, root_level: int | None = None) -> None:
    """Per chunk at INFO, per call at DEBUG (issue 19: 30 MB of logs for 211k items): quiet
    the libraries' per-request INFO lines unless the worker logs at DEBUG.

    With BATCHROUTER_LOG_CALLS=1 the per-call lines (batchrouter.calls, and httpx's) are
    logged at INFO."""
    settings = settings or get_settings()
    root_level = logging.getLogger().getEffectiveLevel() if root_level is None else root_level
    if settings.log_calls:
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
    elif root_level > logging.DEBUG:
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@after_setup_logger.connect
def _on_logging_set_up(loglevel: Any = None, **_: Any) -> None:
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    configure_call_logs(root_level=level if isinstance(level, int) else None)


def make_celery(settings: Settings) -> Celery:
    app = Celery("batchrouter", include=["worker.tasks"])
    # Redis redelivers a message unacked for longer than this; every app and worker must agree.
    transport_options: dict = {"visibility_timeout": settings.visibility_timeout}
    broker_url = settings.resolved_broker_url()
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        # A publish or an ack on a dead connection fails within the timeout instead of
        # hanging; kombu also drops a consumer connection whose BRPOP reply is overdue.
        transport_options.update(redis_socket_options(settings))
    if broker_url.startswith("filesystem"):
        from worker.embedded_broker import install

        install()  # atomic message files (kombu's may be read before they are written)
        # The embedded broker: messages are files in one folder shared by every local process.
        folder = settings.broker_folder()
        transport_options.update(
            data_folder_in=str(folder),
            data_folder_out=str(folder),
            control_folder=str(folder / "control"),
            polling_interval=0.05,
        )
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport_options,
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        visibility_timeout=settings.visibility_timeout,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,  # results live in the ledger
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=CONTROL_QUEUE,
        task_acks_late=True,  # a message is acked only when its items are recorded
        task_reject_on_worker_lost=True,  # a killed worker's message goes back to the queue
        worker_prefetch_multiplier=1,  # hold no more than we run (visibility timeout)
        worker_send_task_events=True,  # Flower
        # Not cancelling: the threads pool cannot kill a job (its attempt raises inside the
        # reconnect path and leaves the consumer stuck after a Redis restart). A task that
        # outlives its connection finishes; its redelivered twin finds the items settled.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # a broker outage delays work, it never ends a worker
        broker_pool_limit=max(10, settings.concurrency * 2),
        worker_hijack_root_logger=False,
        # A worker told to stop finishes what it holds for this long, then hands back
        # (requeues) the late-acked messages it could not finish.
        worker_soft_shutdown_timeout=float(settings.soft_shutdown_timeout),
        worker_enable_soft_shutdown_on_idle=True,
        beat_schedule={
            "reconcile": {
                "task": "batchrouter.reconcile",
                "schedule": float(settings.reconcile_interval),
                "options": {"queue": CONTROL_QUEUE},
            },
            # Claims are leases: re-queue the items of workers whose lease lapsed (worker/lease.py)
            "take-over": {
                "task": "batchrouter.take_over",
                "schedule": float(settings.lease_check_interval),
                "options": {"queue": CONTROL_QUEUE, "expires": settings.lease_check_interval},
            },
            "deferred-poll": {
                "task": "batchrouter.deferred_poll",
                "schedule": float(settings.deferred_poll_interval),
                "options": {"queue": CONTROL_QUEUE, "expires": settings.deferred_poll_interval},
            },
        },
    )
    return app


app = make_celery(get_settings())
