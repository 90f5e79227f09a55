"""Billing across a partition (issue 18), on SQLite and PostgreSQL.

A worker cut off from the ledger keeps its calls going; its lease lapses and another worker
takes the item over. When the first comes back, its late outcome is refused, but the calls it
made land on their rows as `superseded` (paid, answer not used) at their real cost, whichever
of the two workers writes first, and the item's cost stays the sum of its rows.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from ledger.batches import register_batch
from ledger.db import session_scope
from ledger.journal import Intent, take_over_dead_rounds, write_intents
from ledger.models import Attempt, Item
from ledger.money import money
from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from ledger.superseded import NOT_SENT, SUPERSEDED, not_sent
from ledger.transitions import claim_items, record_outcomes
from routing.types import InputItem

ESTIMATE, REAL, SECOND = 0.01, 0.003, 0.002


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def _call(no: int, outcome: str = "passed", cost: float = REAL) -> AttemptRecord:
    return AttemptRecord(
        attempt_no=no, tier="t0", deployment="d", provider="openai", model="m",
        outcome=outcome, cost_usd=cost, input_tokens=10, output_tokens=5, output="answer",
    )  # fmt: skip


def _outcome(item: ClaimedItem, attempts: list[AttemptRecord]) -> ItemOutcome:
    return ItemOutcome(
        item_id=item.id, batch_id=item.batch_id, tier="t0", attempts=attempts,
        next_state="succeeded", next_tier="t0", output="answer", claim_no=item.claim_no,
    )  # fmt: skip


def _claimed_with_a_call_in_flight() -> ClaimedItem:
    """Worker S claims a new item and journals a call (its intent row, at its estimate)."""
    with session_scope() as session:
        _, [item_id] = register_batch(
            session,
            items=[InputItem("x", "text", 1)],
            task_type="tickets",
            entry_tier="t0",
            config_yaml="{}",
            config_source="test",
        )
    with session_scope() as session:
        [s_item] = claim_items(session, [item_id], "t0", "message-s", lease_holder="s")
    intent = replace(_call(1, "in_flight", ESTIMATE), usage_estimated=True)
    with session_scope() as session:
        assert write_intents(session, [Intent(item_id, s_item.batch_id, "t0", 1, intent)])
    return s_item


def _cut_off_then_taken_over() -> tuple[ClaimedItem, ClaimedItem]:
    """Worker S claims the item and journals a call; S is cut off, its claim is taken over
    by worker T, whose claim turns the call's row into a lost one and adopts it."""
    s_item = _claimed_with_a_call_in_flight()
    item_id = s_item.id
    with session_scope() as session:  # the lease check put it back; T claims it
        session.get(Item, item_id).state = "queued"  # type: ignore[union-attr]
    with session_scope() as session:
        [t_item] = claim_items(session, [item_id], "t0", "message-t", lease_holder="t")
        dead = take_over_dead_rounds(session, [t_item])
    return s_item, replace(t_item, dead_round=tuple(dead[item_id]))


def _ledger(item_id: int) -> tuple[Item, list[Attempt]]:
    with session_scope() as session:
        item = session.get(Item, item_id)
        rows = list(
            session.scalars(
                select(Attempt).where(Attempt.item_id == item_id).order_by(Attempt.attempt_no)
            )
        )
    assert item is not None
    return item, rows


def _record(outcome: ItemOutcome) -> list[ItemOutcome]:
    with session_scope() as session:
        return record_outcomes(session, [outcome])[0]


@pytest.mark.parametrize("first", ["taker", "cut_off"])
def test_a_cut_off_workers_paid_call_is_kept_as_superseded(ledger_url: str, first: str) -> None:
    s_item, t_item = _cut_off_then_taken_over()
    [adopted] = t_item.dead_round
    assert adopted.error_class == "lost_in_flight" and adopted.cost_usd == ESTIMATE
    taker = _outcome(t_item, [adopted, _call(2, cost=SECOND)])
    late = _outcome(s_item, [_call(1)])  # what S learnt of its call once it was back

    if first == "taker":
        assert _record(taker) and _record(late) == []
    else:
        assert _record(late) == [] and _record(taker)

    item, rows = _ledger(s_item.id)
    assert [(r.attempt_no, r.outcome) for r in rows] == [(1, SUPERSEDED), (2, "passed")]
    assert rows[0].cost_usd == money(REAL) and rows[0].output_tokens == 5  # real, not estimate
    assert item.state == "succeeded" and item.output == "answer"
    assert item.attempts == 2
    assert item.cost_usd == money(REAL) + money(SECOND)  # the sum of its rows, exactly


def test_an_intent_the_worker_never_acted_on_costs_nothing(ledger_url: str) -> None:
    """The intent committed, but its commit's reply was lost with the network: S never sent
    the call. Back again, S's intent is refused and S says so: the row is not billed."""
    s_item, t_item = _cut_off_then_taken_over()
    [adopted] = t_item.dead_round
    assert _record(_outcome(t_item, [adopted, _call(2, cost=SECOND)]))
    assert _record(_outcome(s_item, [not_sent(_call(1))])) == []
    item, rows = _ledger(s_item.id)
    assert [(r.outcome, r.error_class, r.cost_usd) for r in rows[:1]] == [(SUPERSEDED, NOT_SENT, 0)]
    assert item.cost_usd == money(SECOND)


def test_a_completed_row_is_never_overwritten_by_a_late_writer(ledger_url: str) -> None:
    """A row some round completed (here the taker's own call) is the truth and stays."""
    s_item, t_item = _cut_off_then_taken_over()
    [adopted] = t_item.dead_round
    assert _record(_outcome(t_item, [adopted, _call(2, cost=SECOND)]))
    late = _outcome(s_item, [_call(1), _call(2, "check_failed", 0.5)])
    assert _record(late) == []
    _, rows = _ledger(s_item.id)
    assert [(r.outcome, r.cost_usd) for r in rows] == [
        (SUPERSEDED, money(REAL)),
        ("passed", money(SECOND)),
    ]


def test_back_before_any_new_claim_its_answer_is_used(ledger_url: str) -> None:
    """Re-queued but not claimed again yet: the call's row is still in flight, so the late
    answer is written as it is, and the next claim settles the item from it, no new call."""
    s_item = _claimed_with_a_call_in_flight()
    item_id = s_item.id
    with session_scope() as session:  # its lease lapsed: back on the queue, no claim yet
        session.get(Item, item_id).state = "queued"  # type: ignore[union-attr]
    assert _record(_outcome(s_item, [_call(1)])) == []  # refused: not its claim any more
    with session_scope() as session:
        [t_item] = claim_items(session, [item_id], "t0", "message-t", lease_holder="t")
        dead = take_over_dead_rounds(session, [t_item])
    assert [(r.outcome, r.cost_usd) for r in dead[item_id]] == [("passed", REAL)]


def test_a_late_writer_never_touches_another_claims_call(ledger_url: str) -> None:
    """S's intent for call 2 was refused (T had taken over) and T made its own call 2; T died
    in it, and a third claim declared T's call lost. S's `not_sent` for number 2 is about its
    own intent, not T's call: T's row keeps its estimate (it may be billed)."""
    s_item, t_item = _cut_off_then_taken_over()
    intent = replace(_call(2, "in_flight", ESTIMATE), usage_estimated=True)
    with session_scope() as session:  # T's own call 2, then T dies; a third claim takes over
        assert write_intents(session, [Intent(s_item.id, s_item.batch_id, "t0", 2, intent)])
        session.get(Item, s_item.id).state = "queued"  # type: ignore[union-attr]
    with session_scope() as session:
        [third] = claim_items(session, [s_item.id], "t0", "message-3", lease_holder="u")
        take_over_dead_rounds(session, [third])
    assert _record(_outcome(s_item, [_call(1), not_sent(_call(2))])) == []
    _, rows = _ledger(s_item.id)
    assert [(r.outcome, r.error_class, r.cost_usd) for r in rows] == [
        (SUPERSEDED, None, money(REAL)),
        ("error", "lost_in_flight", money(ESTIMATE)),
    ]
