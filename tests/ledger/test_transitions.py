"""Ledger writes on SQLite and PostgreSQL: migrations match the models; transitions are CAS."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import func, select

from ledger.batches import batch_status, register_batch
from ledger.db import alembic_config, session_scope
from ledger.models import Attempt, Batch
from ledger.outcomes import AttemptRecord, ItemOutcome
from ledger.transitions import claim_items, record_outcomes
from routing.types import InputItem


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def test_the_migration_creates_exactly_the_models_tables(ledger_url: str) -> None:
    command.check(alembic_config(ledger_url))  # raises when models and migrations differ


def _register(n: int) -> tuple[str, list[int]]:
    with session_scope() as session:
        return register_batch(
            session,
            items=[
                InputItem(external_id=f"x{i}", text=f"text {i}", line_no=i + 1) for i in range(n)
            ],
            task_type="tickets",
            entry_tier="t0",
            config_yaml="{}",
            config_source="test",
        )


def _outcome(item_id: int, batch_id: str, state: str, to_tier: str = "t0") -> ItemOutcome:
    record = AttemptRecord(
        attempt_no=1,
        tier="t0",
        deployment="d",
        provider="sim",
        model="m",
        outcome="passed" if state == "succeeded" else "check_failed",
        cost_usd=0.25,
        output="out",
    )
    return ItemOutcome(
        item_id=item_id,
        batch_id=batch_id,
        tier="t0",
        attempts=[record],
        next_state=state,
        next_tier=to_tier,
        output="out",
        deployment="d",
        model="m",
    )


def test_an_item_is_claimed_once(ledger_url: str) -> None:
    _, ids = _register(3)
    with session_scope() as session:
        first = claim_items(session, ids, "t0", "msg-1")
    with session_scope() as session:
        second = claim_items(session, ids, "t0", "another-message")
        other_tier = claim_items(session, ids, "t1", "msg-2")
    assert [c.id for c in first] == ids
    assert second == [] and other_tier == []


def test_outcomes_are_written_once_and_finish_the_batch(ledger_url: str) -> None:
    batch_id, ids = _register(2)
    with session_scope() as session:
        claim_items(session, ids, "t0", "msg-1")
    outcomes = [_outcome(ids[0], batch_id, "succeeded"), _outcome(ids[1], batch_id, "queued", "t1")]
    with session_scope() as session:
        assert len(record_outcomes(session, outcomes)[0]) == 2
    with session_scope() as session:
        assert record_outcomes(session, outcomes) == ([], [])  # a replay finds nothing of its own
        attempts = session.scalar(select(func.count()).where(Attempt.batch_id == batch_id))
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert (attempts, batch.done, batch.finished_at) == (2, 1, None)
        status = batch_status(session, batch_id)
    assert status.by_tier_state == {("t0", "succeeded"): 1, ("t1", "queued"): 1}

    with session_scope() as session:
        [claimed] = claim_items(session, ids, "t1", "msg-2")
        assert claimed.attempts == 1 and claimed.cost_usd == 0.25
        escalated = _outcome(ids[1], batch_id, "failed", "t1")
        escalated.tier = "t1"
        escalated.attempts[0].attempt_no = 2
        escalated.claim_no = claimed.claim_no
        assert record_outcomes(session, [escalated]) == ([escalated], [batch_id])
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.done == 2 and batch.finished_at is not None
        assert batch_status(session, batch_id).finished


def test_a_redelivered_message_takes_its_claim_back_and_the_old_claim_writes_nothing(
    ledger_url: str,
) -> None:
    batch_id, ids = _register(1)
    with session_scope() as session:
        [first] = claim_items(session, ids, "t0", "msg-1")
    with session_scope() as session:  # the same message again: its worker was presumed dead
        [second] = claim_items(session, ids, "t0", "msg-1")
    assert (first.claim_no, second.claim_no) == (1, 2)
    stale = _outcome(ids[0], batch_id, "succeeded")
    stale.claim_no = first.claim_no
    with session_scope() as session:
        assert record_outcomes(session, [stale]) == ([], [])  # the first worker woke up late
    current = _outcome(ids[0], batch_id, "succeeded")
    current.claim_no = second.claim_no
    with session_scope() as session:
        assert record_outcomes(session, [current]) == ([current], [batch_id])
        assert session.scalar(select(func.count()).where(Attempt.batch_id == batch_id)) == 1


def test_an_item_whose_worker_keeps_dying_fails_after_max_claims(ledger_url: str) -> None:
    batch_id, ids = _register(1)
    for _ in range(3):
        with session_scope() as session:
            assert len(claim_items(session, ids, "t0", "poison", max_claims=3)) == 1
    with session_scope() as session:
        assert claim_items(session, ids, "t0", "poison", max_claims=3) == []
    with session_scope() as session:
        status = batch_status(session, batch_id)
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.finished_at is not None
    assert status.by_state == {"failed": 1}


def test_a_round_that_waits_gives_its_claim_and_its_unbilled_outage_calls_back(
    ledger_url: str,
) -> None:
    """An item waiting out an outage is claimed again and again: each waiting round gives its
    claim back (so max_claims counts only claims that died) and its unbilled outage calls
    leave the attempt cap (attempt numbers go on)."""
    batch_id, ids = _register(1)
    for round_no in range(1, 5):  # more rounds than max_claims
        with session_scope() as session:
            [claimed] = claim_items(session, ids, "t0", f"wait-{round_no}", max_claims=3)
        assert (claimed.claim_no, claimed.attempts) == (1, 0)
        assert claimed.attempt_no_base == round_no - 1
        refused = AttemptRecord(
            attempt_no=claimed.attempt_no_base + 1, tier="t0", deployment="d", provider="sim",
            model="m", outcome="error", error_class="transient", error_message="refused",
        )  # fmt: skip
        waiting = ItemOutcome(
            item_id=ids[0], batch_id=batch_id, tier="t0", attempts=[refused],
            next_state="queued", next_tier="t0", error="tier t0 down", claim_no=claimed.claim_no,
            parked=True, resume_in_s=5.0, attempts_given_back=1,
        )  # fmt: skip
        with session_scope() as session:
            assert record_outcomes(session, [waiting]) == ([waiting], [])
    with session_scope() as session:
        [claimed] = claim_items(session, ids, "t0", "back", max_claims=3)
        numbers = session.scalars(select(Attempt.attempt_no).where(Attempt.batch_id == batch_id))
        assert sorted(numbers) == [1, 2, 3, 4]  # every call kept, numbered in order
    assert (claimed.claim_no, claimed.attempts, claimed.attempt_no_base) == (1, 0, 4)
