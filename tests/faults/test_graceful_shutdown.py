"""A worker told to stop (SIGTERM) finishes or hands back what it holds within its timeout.

No reconciler runs here: the messages the stopping worker could not finish must come back by
themselves, and the next worker must be able to take the items those messages had claimed (a
redelivery keeps its claim token) and finish them.
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
ITEMS = 200


def test_sigterm_hands_back_unfinished_work_when_its_time_is_up(
    sqlite_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(sqlite_url)
    source = many_tickets(tmp_path / "tickets.jsonl", ITEMS)
    fast = {"BATCHROUTER_SIM_TIME_SCALE": "0.05", "BATCHROUTER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_S)}
    # The first tier0 worker's calls take 15 s (sim latencies x100): far longer than its
    # soft-shutdown time, so it must stop its chunks and hand them back, not wait for them.
    slow = {**fast, "BATCHROUTER_SIM_TIME_SCALE": "100"}
    common = dict(database_url=sqlite_url, broker_url=redis_url, concurrency=2)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with running_workers(LADDER[1:], log_dir=tmp_path, extra_env=fast, **common):
        with running_workers(LADDER[:1], log_dir=tmp_path / "first", extra_env=slow, **common) as [
            tier0
        ]:
            submitted = submit_batch(
                source, "ticket_classification", config=EXAMPLES / "routing.yaml"
            )
            wait_until(
                lambda: batch_status(submitted.batch_id).by_state.get("running", 0) >= 25,
                120,
                "a chunk claimed",
            )
            time.sleep(1.0)  # its calls are in flight
            stopped_at = time.monotonic()
            tier0.send_signal(signal.SIGTERM)
            tier0.wait(60)
            took = time.monotonic() - stopped_at
            assert batch_status(submitted.batch_id).done == 0  # nothing was finished: handed back
        # The soft-shutdown time, then a few seconds to write what it has and exit (waiting for
        # its chunks would take about 14 s more).
        assert took < SOFT_S + 8, f"the worker took {took:.1f} s to stop"
        with running_workers(LADDER[:1], log_dir=tmp_path / "second", extra_env=fast, **common):
            status = wait_for_batch(submitted.batch_id, timeout=240)
    assert status.done == ITEMS
    assert_nothing_lost_or_charged_twice(submitted.batch_id, ITEMS)
    log = (tmp_path / "first" / "worker-tier0.log").read_text()
    assert "handed back unfinished" in log
