"""A worker process's lease (worker/lease.py): started by its first claim, renewed by its
heartbeat while the process lives, ended when it stops; a ledger it cannot reach is logged at
once, and the lapse when it comes."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select

from ledger.db import session_scope
from ledger.models import WorkerLease as LeaseRow
from worker.lease import WorkerLease


def _expires(holder: str):  # type: ignore[no-untyped-def]
    with session_scope() as session:
        return session.scalar(select(LeaseRow.expires_at).where(LeaseRow.holder == holder))


def test_the_heartbeat_renews_the_lease_until_the_worker_stops(sqlite_url: str, use_ledger) -> None:
    use_ledger(sqlite_url)
    lease = WorkerLease(lease_s=1.5, url=sqlite_url)
    with session_scope() as session:  # the first claim's transaction starts the lease
        assert lease.for_claim(session) == lease.holder
    lease.claim_committed()
    first = _expires(lease.holder)
    assert first is not None
    time.sleep(1.2)  # past two heartbeats (every 0.5 s)
    assert _expires(lease.holder) > first
    assert not lease.lapsed()
    lease.release()
    assert _expires(lease.holder) is None  # its items may be taken over at once


def test_a_worker_cut_off_from_the_ledger_says_so_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lease = WorkerLease(lease_s=0.3, url="postgresql+psycopg://nobody@127.0.0.1:1/ledger")
    lease._renewed = time.monotonic()  # it held the lease until now
    with caplog.at_level(logging.ERROR, logger="batchrouter.lease"):
        assert not lease.renew_now()
        time.sleep(0.4)
        assert not lease.renew_now()
    messages = [record.getMessage() for record in caplog.records]
    assert "cannot reach the ledger to renew" in messages[0] and "lapse in" in messages[0]
    assert "lapsed" in messages[1] and lease.lapsed()
