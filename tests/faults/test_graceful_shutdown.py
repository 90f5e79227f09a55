"""A worker told to stop (SIGTERM) finishes or hands back what it holds within its timeout.

No reconciler runs here: the messages the stopping worker could not finish must come back by
themselves (Celery's soft shutdown requeues late-acked messages), and the next worker must be
able to take the items those messages had claimed (a redelivery keeps its claim token).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from tests.conftest import EXAMPLES
from tests.helpers.faults import assert_nothing_lost_or_charged_twice, many_tickets, wait_until
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]
LADDER = ["tier0", "tier1", "tier2"]
SOFT_S = 2
# Slow calls (sim latencies x8): a chunk runs for longer than the soft-shutdown time, so the
# worker must stop its chunks and hand them back rather than wait for them.
ENV = {"BATCHROUTER_SIM_TIME_SCALE": "8", "BATCHROUTER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_S)}


def test_sigterm_hands_back_unfinished_work(
    sqlite_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(sqlite_url)
    source = many_tickets(tmp_path / "tickets.jsonl", 1000)
    common = dict(database_url=sqlite_url, broker_url=redis_url, extra_env=ENV, concurrency=2)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with running_workers(LADDER[1:], log_dir=tmp_path, **common):
        with running_workers(LADDER[:1], log_dir=tmp_path / "first", **common) as [tier0]:
            submitted = submit_batch(
                source, "ticket_classification", config=EXAMPLES / "routing.yaml"
            )
            wait_until(lambda: batch_status(submitted.batch_id).done >= 50, 120, "50 items done")
            stopped_at = time.monotonic()
            tier0.send_signal(signal.SIGTERM)
            tier0.wait(60)
            took = time.monotonic() - stopped_at
            assert batch_status(submitted.batch_id).done < 1000
        # The soft-shutdown time, then a few seconds to write what it has and close.
        assert took < SOFT_S + 6, f"the worker took {took:.1f} s to stop"
        with running_workers(LADDER[:1], log_dir=tmp_path / "second", **common):
            status = wait_for_batch(submitted.batch_id, timeout=240)
    assert status.done == 1000
    assert_nothing_lost_or_charged_twice(submitted.batch_id, 1000)
