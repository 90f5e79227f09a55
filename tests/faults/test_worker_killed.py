"""Fault 1: SIGKILL a worker in the middle of a 2,000-item batch, then start another.

Every item must end, none may be lost, and no call may be recorded or charged twice.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from tests.conftest import EXAMPLES
from tests.helpers.faults import (
    assert_nothing_lost_or_charged_twice,
    many_tickets,
    reconciler_running,
    wait_until,
)
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(600)]
LADDER = ["tier0", "tier1", "tier2"]
SLOW = {"BATCHROUTER_SIM_TIME_SCALE": "1.0", "BATCHROUTER_VISIBILITY_TIMEOUT": "30"}


def test_sigkill_a_worker_mid_batch(
    postgres_url: str, redis_url: str, use_ledger, tmp_path: Path, monkeypatch
) -> None:
    use_ledger(postgres_url)
    source = many_tickets(tmp_path / "tickets.jsonl", 2000)
    common = dict(database_url=postgres_url, broker_url=redis_url, extra_env=SLOW, concurrency=2)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with running_workers(LADDER[1:], log_dir=tmp_path, **common):
        with running_workers(LADDER[:1], log_dir=tmp_path / "first", **common) as [tier0]:
            submitted = submit_batch(
                source, "ticket_classification", config=EXAMPLES / "routing.yaml"
            )

            def mid_chunk() -> bool:  # the kill must catch claimed items, not a gap between chunks
                status = batch_status(submitted.batch_id)
                return status.done >= 300 and status.by_state.get("running", 0) > 0

            wait_until(mid_chunk, 120, "300 items done and a chunk running", poll=0.05)
            tier0.send_signal(signal.SIGKILL)  # no warm shutdown, no ack, no cleanup
            tier0.wait()
            done_at_kill = batch_status(submitted.batch_id).done
        assert done_at_kill < 2000, "the kill must land in the middle of the batch"
        with (
            reconciler_running() as repairs,
            running_workers(LADDER[:1], log_dir=tmp_path / "second", **common),
        ):
            status = wait_for_batch(submitted.batch_id, timeout=300)

    # The dead worker's claims came back through the reconciler, not by luck.
    assert sum(r.requeued_stale for r in repairs if not isinstance(r, Exception)) > 0, repairs

    assert status.done == 2000
    states = assert_nothing_lost_or_charged_twice(submitted.batch_id, 2000)
    assert sum(states.values()) == 2000
