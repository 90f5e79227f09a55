"""Claims are leases (issue 18), on SQLite and PostgreSQL: a lapsed lease's items are taken
over at the next lease check, a live worker's never, however old its claim."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ledger.batches import register_batch
from ledger.db import session_scope
from ledger.leases import renew_lease
from ledger.locks import new_holder
from ledger.models import Item, WorkerLease, utcnow
from ledger.outcomes import AttemptRecord, ItemOutcome
from ledger.transitions import claim_items, record_outcomes
from routing.types import InputItem
from worker.reconcile import requeue_lapsed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def _register(n: int) -> tuple[str, list[int]]:
    with session_scope() as session:
        return register_batch(
            session,
            items=[InputItem(external_id=f"x{i}", text=f"t {i}", line_no=i + 1) for i in range(n)],
            task_type="tickets",
            entry_tier="t0",
            config_yaml="{}",
            config_source="test",
        )


def _claim(ids: list[int], token: str, holder: str | None, lease_s: float = 30) -> list:
    with session_scope() as session:
        if holder is not None:
            renew_lease(session, holder, lease_s)
        return claim_items(session, ids, "t0", token, lease_holder=holder)


def _age_claims(ids: list[int], seconds: float) -> None:
    with session_scope() as session:
        session.execute(
            update(Item)
            .where(Item.id.in_(ids))
            .values(claimed_at=utcnow() - timedelta(seconds=seconds))
        )


def _lapse(holder: str) -> None:
    with session_scope() as session:
        session.execute(
            update(WorkerLease)
            .where(WorkerLease.holder == holder)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def _states(ids: list[int]) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Item.state).where(Item.id.in_(ids)).order_by(Item.id)))


def test_a_live_workers_claims_are_never_taken_however_old(ledger_url: str) -> None:
    _, ids = _register(3)
    live = new_holder()
    _claim(ids, "msg-1", live)
    _age_claims(ids, 3600)  # a slow call: an hour, far past any running timeout
    assert requeue_lapsed(unleased_timeout_s=1.0) == {}
    assert _states(ids) == ["running"] * 3


def test_a_lapsed_lease_is_taken_over_and_the_old_claims_result_refused(ledger_url: str) -> None:
    batch_id, ids = _register(2)
    cut_off, other = new_holder(), new_holder()
    old = _claim(ids, "msg-1", cut_off)
    _lapse(cut_off)
    assert requeue_lapsed(unleased_timeout_s=3600.0) == {"t0": ids}
    new = _claim(ids, "msg-2", other)  # the republished message, on another host
    assert [item.claim_no for item in new] == [item.claim_no + 1 for item in old]
    assert requeue_lapsed(unleased_timeout_s=3600.0) == {}  # the new holder is live

    record = AttemptRecord(
        attempt_no=1, tier="t0", deployment="d", provider="sim", model="m", outcome="passed"
    )
    late = ItemOutcome(
        item_id=ids[0],
        batch_id=batch_id,
        tier="t0",
        attempts=[record],
        next_state="succeeded",
        next_tier="t0",
        output="late",
        claim_no=old[0].claim_no,
    )
    with session_scope() as session:
        written, _ = record_outcomes(session, [late])
    assert written == []
    assert _states(ids) == ["running", "running"]


def test_claims_made_without_a_lease_still_fall_back_to_their_age(ledger_url: str) -> None:
    _, ids = _register(2)
    _claim(ids, "msg-1", None)  # a worker from before leases
    assert requeue_lapsed(unleased_timeout_s=60.0) == {}
    _age_claims(ids, 120)
    assert requeue_lapsed(unleased_timeout_s=60.0) == {"t0": ids}


def test_a_holder_on_this_host_whose_process_is_gone_is_taken_at_once(ledger_url: str) -> None:
    _, ids = _register(1)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    host, _, rest = new_holder().partition(":")
    holder = f"{host}:{gone}:{rest.partition(':')[2]}"
    _claim(ids, "msg-1", holder, lease_s=3600)  # its lease has an hour left
    assert requeue_lapsed(unleased_timeout_s=3600.0) == {"t0": ids}
