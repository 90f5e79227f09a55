"""Put item ids on a tier's queue. Messages carry ids and the tier name, never item text.

Bulk enqueue: one message per chunk of ids, all published on one pooled connection, and on
Redis pipelined (kombu's `Producer.batch()`): `publish_pipeline` messages per round trip
instead of one, which is what made a plain `apply_async` loop slow.
Other transports (the embedded filesystem broker) publish one by one through the same call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger.batches import chunked
from worker.queues import ATTEMPT_TASK, tier_queue

Progress = Callable[[int], None]  # called with the number of item ids just published


def publish_items(
    item_ids: Sequence[int],
    tier: str,
    chunk_size: int,
    *,
    pipeline: int | None = None,
    progress: Progress | None = None,
    countdown: float | None = None,
) -> int:
    """Publish `item_ids` to `tier`'s queue in chunks; return the number of messages.

    `pipeline` messages go to Redis per round trip (default: BATCHROUTER_PUBLISH_PIPELINE);
    `progress` hears how many ids each flushed group carried. On an error nothing buffered
    after the last flush is sent; the caller treats the whole publish as failed.
    `countdown`: the messages run no sooner than that many seconds from now (a worker holds
    them unacknowledged meanwhile: keep it far below the visibility timeout).
    """
    from routing.settings import get_settings
    from worker.app import app

    per_trip = pipeline or get_settings().publish_pipeline
    chunks = chunked(item_ids, chunk_size)
    queue = tier_queue(tier)
    with app.producer_or_acquire() as producer:
        for start in range(0, len(chunks), per_trip):
            group = chunks[start : start + per_trip]
            # One batch per group: its exit flushes the pipeline, so progress is real.
            with producer.batch(max_size=per_trip + 1):
                for chunk in group:
                    app.send_task(
                        ATTEMPT_TASK,
                        kwargs={"item_ids": chunk, "tier": tier},
                        queue=queue,
                        routing_key=tier,
                        producer=producer,
                        countdown=countdown,
                    )
            if progress is not None:
                progress(sum(len(chunk) for chunk in group))
    return len(chunks)
