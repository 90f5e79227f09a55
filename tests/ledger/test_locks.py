"""Ledger locks (a lease in the `ledger_locks` table) and the one-poll-at-a-time rule they
give the deferred poller, on SQLite and PostgreSQL. The race itself is in test_races.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from ledger.db import session_scope
from ledger.locks import Lease, LeaseLost, acquire, current, new_holder, release, renew
from tests.conftest import ROOT
from worker.deferred.poller import POLL_LOCK, poll_once


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def _take(holder: str, lease_s: float, name: str = "job") -> bool:
    with session_scope() as session:
        return acquire(session, name, holder, lease_s)


def test_a_lock_has_one_holder_until_released_or_its_lease_runs_out(ledger_url: str) -> None:
    me, other = new_holder(), new_holder()
    assert _take(me, 60)
    assert not _take(other, 60)
    assert _take(me, 60), "the holder may take it again (that extends its lease)"
    with session_scope() as session:
        assert release(session, "job", me)
    assert _take(other, 0.3)
    assert not _take(me, 60)
    time.sleep(0.4)  # the lease ran out: the next one takes it, and the old holder lost it
    assert _take(me, 60)
    with session_scope() as session:
        assert not renew(session, "job", other, 60)
        assert not release(session, "job", other)
        state = current(session, "job")
    assert state is not None and state.holder == me


def test_a_lease_renews_between_steps_and_says_when_it_was_lost(ledger_url: str) -> None:
    lease = Lease("job", lease_s=0.2)
    assert lease.acquire()
    time.sleep(0.1)
    lease.renew()  # a quarter of the lease passed: written
    time.sleep(0.3)
    assert _take(new_holder(), 60)  # expired, and taken
    with pytest.raises(LeaseLost):
        lease.renew()


def test_a_holder_whose_process_died_on_this_host_is_taken_over_at_once(ledger_url: str) -> None:
    host = socket.gethostname()[:120]
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True, capture_output=True, check=True,
    )  # fmt: skip
    assert _take(f"{host}:{finished.stdout.strip()}:deadbeef", 600)
    assert _take(new_holder(), 60), "its process is gone: no need to wait out the lease"
    # A live process on this host keeps it (this test's own process, another lease)...
    assert _take(f"{host}:{os.getpid()}:cafe", 600, name="other")
    assert not _take(new_holder(), 60, name="other")
    # ...and a holder on another host keeps it until its lease runs out.
    assert _take("elsewhere:1:beef", 600, name="third")
    assert not _take(new_holder(), 60, name="third")


def test_a_poll_that_finds_the_lock_held_does_nothing_and_says_so(ledger_url: str) -> None:
    assert _take("beat-host:123:abcd", 60, name=POLL_LOCK)
    summary = poll_once(force=True)
    assert summary.locked_by is not None and summary.locked_by.startswith("beat-host:123:abcd")
    assert (summary.formed, summary.submitted, summary.errors) == (0, 0, [])
    with session_scope() as session:
        release(session, POLL_LOCK, "beat-host:123:abcd")
    summary = poll_once(force=True)
    assert summary.locked_by is None
    with session_scope() as session:  # a poll releases what it took
        state = current(session, POLL_LOCK)
    assert state is not None and state.holder is None


def test_deferred_poll_wait_waits_for_the_lock(ledger_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert _take("beat-host:123:abcd", 60, name=POLL_LOCK)
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": ledger_url}
    command = [sys.executable, "-m", "batchrouter", "deferred", "poll"]
    once = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert once.returncode == 0, once.stderr
    assert "another poll holds the lock (beat-host:123:abcd" in once.stderr

    def release_soon() -> None:
        time.sleep(2)
        with session_scope() as session:
            release(session, POLL_LOCK, "beat-host:123:abcd")

    releaser = threading.Thread(target=release_soon)
    releaser.start()
    waited = subprocess.run(
        command + ["--wait", "--every", "0.5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    releaser.join()
    assert waited.returncode == 0, waited.stderr
    assert "waiting" in waited.stderr
    assert "deferred: 0 formed" in waited.stderr  # it polled once the lock was free
