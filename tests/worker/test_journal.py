"""The call journal on SQLite and PostgreSQL: a row before each call, its outcome within the
flush window, calls cut off by a dead worker kept at their estimate, and a round continued from
its dead predecessor without paying again for an answer already judged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ledger.batches import register_batch
from ledger.db import session_scope
from ledger.journal import take_over_dead_rounds
from ledger.models import Attempt, Item
from ledger.money import money
from ledger.outcomes import ClaimedItem
from ledger.transitions import claim_items, record_outcomes
from providers import base
from routing.config import RoutingConfig, parse_config
from routing.deployments import Deployment
from routing.types import CompletionRequest, CompletionResult, InputItem, Usage
from worker.attempt import run_item
from worker.journal import CallJournal

CONFIG = """\
deployments:
  a: {provider: journaled, model: gpt-4o-mini, prices: {input: 1, output: 2}, max_output_tokens: 100}
  b: {provider: journaled, model: gpt-4o, prices: {input: 10, output: 20}, max_output_tokens: 100}
tiers:
  - {name: t0, deployments: [a]}
  - {name: t1, deployments: [b]}
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label this: {text}"
    checks: [{kind: label, labels: [billing, refund]}]
    cache: false
"""


class GatedProvider:
    """Answers `billing` with known usage; a text holding `slow` waits for `release`."""

    def __init__(self) -> None:
        self.calls: list[CompletionRequest] = []
        self.release = asyncio.Event()

    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        self.calls.append(request)
        if "slow" in request.messages[-1].content:
            await self.release.wait()
        return CompletionResult(text="billing", usage=Usage(input_tokens=1000, output_tokens=10))


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedProvider]:
    gated = GatedProvider()
    monkeypatch.setitem(base._INSTANCES, "journaled", gated)
    yield gated


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


@pytest.fixture
def config() -> RoutingConfig:
    return parse_config(CONFIG)


def register(*texts: str) -> list[int]:
    with session_scope() as session:
        _, ids = register_batch(
            session,
            items=[InputItem(f"x{n}", text, n + 1) for n, text in enumerate(texts)],
            task_type="tickets",
            entry_tier="t0",
            config_yaml=CONFIG,
            config_source="test",
        )
    return ids


def claim(ids: list[int], token: str) -> list[ClaimedItem]:
    with session_scope() as session:
        return claim_items(session, ids, "t0", token)


def rows(item_id: int) -> list[Attempt]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(Attempt).where(Attempt.item_id == item_id).order_by(Attempt.attempt_no)
            )
        )


# Estimated cost of one call on `a`: the prompt's tokens at $1/M plus 100 output tokens at $2/M.
def estimate(row: Attempt) -> bool:
    return row.cost_usd > 100 * 2 / 1e6 and row.usage_estimated


def test_a_finished_call_is_durable_while_its_chunk_is_still_running(
    ledger_url: str, config: RoutingConfig, provider: GatedProvider
) -> None:
    fast_id, slow_id = register("my card was charged twice", "slow: where is my refund")
    fast, slow = claim([fast_id, slow_id], "message-1")
    journal = CallJournal(flush_s=0.05)

    async def chunk() -> None:
        both = asyncio.gather(
            run_item(fast, config, "tickets", middleware=[], journal=journal),
            run_item(slow, config, "tickets", middleware=[], journal=journal),
        )
        # The fast call's outcome reaches the ledger within the flush window, while the slow
        # call of the same chunk is still open (its row says so, at its estimated cost).
        for _ in range(100):
            await asyncio.sleep(0.05)
            seen_fast = await asyncio.to_thread(rows, fast_id)
            if seen_fast and seen_fast[0].outcome != "in_flight":
                break
        seen_slow = await asyncio.to_thread(rows, slow_id)
        assert [(r.outcome, r.cost_usd) for r in seen_fast] == [
            ("passed", money(1000 / 1e6 + 20 / 1e6))
        ]
        assert [r.outcome for r in seen_slow] == ["in_flight"] and estimate(seen_slow[0])
        provider.release.set()
        await both

    asyncio.run(chunk())


def test_a_call_cut_off_by_a_dead_worker_stays_in_the_ledger_at_its_estimate(
    ledger_url: str, config: RoutingConfig, provider: GatedProvider
) -> None:
    [item_id] = register("slow: refund please")
    [first] = claim([item_id], "message-1")

    async def die_mid_call() -> None:
        task = asyncio.create_task(
            run_item(first, config, "tickets", middleware=[], journal=CallJournal(flush_s=0.05))
        )
        while not provider.calls:
            await asyncio.sleep(0.01)
        task.cancel()  # the worker is gone: no final, no chunk outcome

    asyncio.run(die_mid_call())
    [cut_off] = rows(item_id)
    assert cut_off.outcome == "in_flight" and estimate(cut_off)

    # The message is redelivered: the same token claims the item again.
    [again] = claim([item_id], "message-1")
    with session_scope() as session:
        dead = take_over_dead_rounds(session, [again])
    assert [(r.outcome, r.error_class) for r in dead[item_id]] == [("error", "lost_in_flight")]
    provider.release.set()
    outcome = asyncio.run(
        run_item(
            ClaimedItem(**{**again.__dict__, "dead_round": tuple(dead[item_id])}),
            config,
            "tickets",
            middleware=[],
            journal=CallJournal(flush_s=0.05),
        )
    )
    with session_scope() as session:
        written, _ = record_outcomes(session, [outcome])
        item = session.get(Item, item_id)
        assert item is not None
        assert (item.state, item.attempts) == ("succeeded", 2)
    lost, answered = rows(item_id)
    assert (lost.error_class, lost.usage_estimated) == ("lost_in_flight", True)
    assert (answered.attempt_no, answered.outcome) == (2, "passed")
    assert item.cost_usd == lost.cost_usd + answered.cost_usd


def test_an_answer_judged_before_the_worker_died_is_not_paid_for_again(
    ledger_url: str, config: RoutingConfig, provider: GatedProvider
) -> None:
    [item_id] = register("my card was charged twice")
    [first] = claim([item_id], "message-1")
    journal = CallJournal(flush_s=0.01)

    async def answer_then_die() -> None:
        await run_item(first, config, "tickets", middleware=[], journal=journal)
        await asyncio.sleep(0.3)  # the final is written; the chunk's outcome never is

    asyncio.run(answer_then_die())
    assert [r.outcome for r in rows(item_id)] == ["passed"]

    [again] = claim([item_id], "message-1")
    with session_scope() as session:
        dead = take_over_dead_rounds(session, [again])
    calls_before = len(provider.calls)
    outcome = asyncio.run(
        run_item(
            ClaimedItem(**{**again.__dict__, "dead_round": tuple(dead[item_id])}),
            config,
            "tickets",
            middleware=[],
            journal=CallJournal(),
        )
    )
    assert len(provider.calls) == calls_before  # settled from the dead round
    with session_scope() as session:
        record_outcomes(session, [outcome])
        item = session.get(Item, item_id)
        assert item is not None
        assert (item.state, item.output, item.attempts) == ("succeeded", "billing", 1)
    assert len(rows(item_id)) == 1


def test_a_worker_whose_claim_was_taken_over_makes_no_call(
    ledger_url: str, config: RoutingConfig, provider: GatedProvider
) -> None:
    [item_id] = register("my card was charged twice")
    [stale] = claim([item_id], "message-1")
    claim([item_id], "message-1")  # its message was redelivered to another worker meanwhile
    outcome = asyncio.run(run_item(stale, config, "tickets", middleware=[], journal=CallJournal()))
    assert provider.calls == []
    assert rows(item_id) == []
    with session_scope() as session:
        written, _ = record_outcomes(session, [outcome])
    assert written == []  # and its outcome is refused too
