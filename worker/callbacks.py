"""Tell someone a batch has ended: a Celery task, a webhook, or both.

Completion is detected in the database (the transition that settles a batch's last item sets
`finished_at` exactly once), so exactly one worker sends the notice. A failed webhook is logged,
never retried forever, and never fails the chunk that finished the batch.
"""

from __future__ import annotations

import logging

import httpx

from ledger.batches import batch_status
from ledger.db import session_scope
from ledger.models import Batch
from ledger.money import dumps
from worker.queues import CONTROL_QUEUE

log = logging.getLogger("batchrouter.callbacks")


def notify_batch_finished(batch_id: str) -> None:
    with session_scope(readonly=True) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or not (batch.callback_task or batch.callback_url):
            return
        payload = {"event": "batch.finished", **batch_status(session, batch_id).as_dict()}
        task, url = batch.callback_task, batch.callback_url
    if task:
        from worker.app import app

        app.send_task(task, kwargs={"batch_id": batch_id}, queue=CONTROL_QUEUE)
    if url:
        for attempt in range(3):
            try:
                body = dumps(payload, indent=None)  # money as exact decimal numbers
                headers = {"content-type": "application/json"}
                httpx.post(url, content=body, headers=headers, timeout=10.0).raise_for_status()
                return
            except httpx.HTTPError as exc:
                # the URL may carry a token: log the error kind, not the message
                log.warning(
                    "webhook for batch %s failed (try %d): %s",
                    batch_id,
                    attempt + 1,
                    type(exc).__name__,
                )
