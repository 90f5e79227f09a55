"""A worker that survives Redis restarting under it (design: "restart Redis in the middle of a
batch, its queues gone: every item ends").

When the broker connection drops, Celery closes it, and kombu's Redis channel, on close, puts
back the messages this worker had received and not acknowledged (`restore_unacked`). If the
connection's transport was torn down first (seen when Redis restarts while task threads ack),
that restore asks the dead transport for its address and raises AttributeError, which kombu
does not catch: Celery calls it an "Unrecoverable error" and the worker process exits, leaving
its tier without a consumer (a batch with items on that tier never ends).

With the transport gone there is nothing to put the messages back on, and nothing is lost by
skipping it: their items are in the ledger, `queued` (the reconciler republishes queued items
that no message names) or `running` under this worker's lease (taken over when it lapses,
or continued by this worker once it reconnects and the message comes back). So the restore is
skipped with a warning, and Celery goes on to reconnect.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger("batchrouter.worker")
_original_restore = kombu_redis.QoS.restore_unacked


def _restore_unacked(self: Any, client: Any = None) -> Any:
    if client is None and getattr(self.channel.connection, "client", None) is None:
        log.warning(
            "broker connection already closed: %d received, unacknowledged messages not put "
            "back (their items are requeued from the ledger)",
            len(self._delivered),
        )
        self._delivered.clear()
        return None
    return _original_restore(self, client)


def install() -> None:
    """Idempotent: patch kombu's Redis QoS once per process."""
    setattr(kombu_redis.QoS, "restore_unacked", _restore_unacked)  # noqa: B010 - a method
