"""SQLite write transactions take the write lock at BEGIN (ledger/db.py), so a read that
decides a write is inside the lock; read-only sessions take no lock and may not write."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ledger.db import READONLY, ReadOnlySessionError, make_engine, session_scope, with_db_retry
from ledger.models import Batch


@pytest.fixture
def url(sqlite_url: str, use_ledger) -> str:
    return use_ledger(sqlite_url)


def _hold_write_lock(url: str, seconds: float) -> threading.Thread:
    """Another process's write transaction, holding the lock for `seconds` (from its BEGIN)."""
    engine = make_engine(url)
    started = threading.Event()

    def hold() -> None:
        with Session(engine) as session:
            session.execute(select(1))  # BEGIN IMMEDIATE: the lock, before any write
            started.set()
            time.sleep(seconds)
            session.commit()
        engine.dispose()

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(5)
    return holder


def test_a_write_transaction_holds_the_lock_from_its_first_read(url: str) -> None:
    impatient = make_engine(url, busy_timeout_s=0.2)
    holder = _hold_write_lock(url, 1.0)
    with Session(impatient) as session, pytest.raises(OperationalError, match="locked"):
        session.execute(select(1))  # its BEGIN IMMEDIATE waits 0.2 s, then gives up
    # A read-only session reads beside the writer (WAL) and takes no lock.
    with Session(impatient.execution_options(**{READONLY: True})) as session:
        assert session.execute(text("select count(*) from batches")).scalar() == 0
    holder.join()
    impatient.dispose()


def test_begin_immediate_waits_up_to_busy_timeout(url: str) -> None:
    patient = make_engine(url, busy_timeout_s=5)
    holder = _hold_write_lock(url, 0.4)
    started = time.monotonic()
    with Session(patient) as session:
        session.execute(select(1))
    waited = time.monotonic() - started
    holder.join()
    patient.dispose()
    assert 0.2 < waited < 4


def test_with_db_retry_retries_a_locked_database(url: str) -> None:
    impatient = make_engine(url, busy_timeout_s=0.1)
    holder = _hold_write_lock(url, 1.0)
    tries = []

    def work() -> int:
        tries.append(1)
        with Session(impatient) as session:
            return int(session.execute(select(1)).scalar_one())

    assert with_db_retry(work, first_delay=0.1) == 1
    holder.join()
    impatient.dispose()
    assert len(tries) > 1


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_read_only_session_refuses_writes(
    database: str, request: pytest.FixtureRequest, use_ledger
) -> None:
    use_ledger(request.getfixturevalue(f"{database}_url"))
    with session_scope(readonly=True) as session:
        assert session.scalar(select(Batch.id)) is None
        with pytest.raises(ReadOnlySessionError):
            session.execute(update(Batch).values(done=0))
    with session_scope(readonly=True) as session, pytest.raises(ReadOnlySessionError):
        # a locking read needs the write transaction: FOR UPDATE alone locks nothing on SQLite
        session.execute(select(Batch.id).with_for_update())
