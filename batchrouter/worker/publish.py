"""Put item ids on a tier's queue. Messages carry ids and the tier name, never item text."""

from __future__ import annotations

from collections.abc import Sequence

from kombu import Queue

from batchrouter.ledger.batches import chunked

ATTEMPT_TASK = "batchrouter.attempt"
CONTROL_QUEUE = "batchrouter.control"  # reconcile and batch callbacks; tier workers take it too


def tier_queue(tier: str) -> Queue:
    return Queue(tier, routing_key=tier)


def publish_items(item_ids: Sequence[int], tier: str, chunk_size: int) -> int:
    """Publish `item_ids` to `tier`'s queue in chunks, on one pooled connection; return messages."""
    from batchrouter.worker.app import app

    messages = 0
    queue = tier_queue(tier)
    with app.producer_or_acquire() as producer:
        for chunk in chunked(item_ids, chunk_size):
            app.send_task(
                ATTEMPT_TASK,
                kwargs={"item_ids": chunk, "tier": tier},
                queue=queue,
                routing_key=tier,
                producer=producer,
            )
            messages += 1
    return messages
