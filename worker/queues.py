"""Queue and task names: one queue per tier (named as the tier), and a control queue.

Owned here, apart from the app and the publisher, because both need them.
"""

from __future__ import annotations

from kombu import Queue

ATTEMPT_TASK = "batchrouter.attempt"
CONTROL_QUEUE = "batchrouter.control"  # reconcile and batch callbacks; tier workers take it too


def tier_queue(tier: str) -> Queue:
    return Queue(tier, routing_key=tier)
