"""Budgets and the per-item spend cap around each call (SQLite ledger, scripted provider)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from ledger.batches import batch_status, register_batch
from ledger.budgets import reserve, set_project_budget, settle
from ledger.db import session_scope
from ledger.models import Batch, ProjectBudget
from ledger.money import money
from ledger.outcomes import ClaimedItem
from ledger.transitions import record_outcomes
from providers import base
from routing.config import RoutingConfig, parse_config
from routing.deployments import Deployment
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    InputItem,
    ProviderError,
    Usage,
)
from worker.attempt import run_item
from worker.budget import BudgetGuard
from worker.middleware import CallContext, Denied, Middleware

# One call: prompt ~10 tokens x $1 + 100 output tokens x $10 per 1M: estimate ~ $0.00101.
CONFIG = """\
deployments:
  a: {provider: budgeted, model: gpt-4o-mini, prices: {input: 1, output: 10}, max_output_tokens: 100}
tiers:
  - {name: t0, deployments: [a]}
task_types:
  tickets:
    ladder: [t0]
    prompt: "{text}"
    checks: [{kind: label, labels: [billing, refund]}]
    transient_retries: 3
    max_item_cost_usd: CAP
"""
USAGE = Usage(input_tokens=10, output_tokens=2)  # $0.00003 a call


class Scripted:
    def __init__(self) -> None:
        self.script: list[str | ProviderError] = []
        self.calls = 0

    async def complete(self, request: CompletionRequest, deployment: Deployment):  # type: ignore[no-untyped-def]
        self.calls += 1
        step = self.script.pop(0) if self.script else "billing"
        if isinstance(step, ProviderError):
            raise step
        return CompletionResult(text=step, usage=USAGE)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    scripted = Scripted()
    monkeypatch.setitem(base._INSTANCES, "budgeted", scripted)
    yield scripted


@pytest.fixture
def ledger(use_ledger, sqlite_url: str) -> str:
    return use_ledger(sqlite_url)


def config(cap: str = "null") -> RoutingConfig:
    return parse_config(CONFIG.replace("CAP", cap))


def new_batch(budget: float | None = None, project: str | None = None, n: int = 1) -> str:
    with session_scope() as session:
        batch_id, _ = register_batch(
            session,
            items=[
                InputItem(external_id=f"x{i}", text="card charged", line_no=i) for i in range(n)
            ],
            task_type="tickets",
            entry_tier="t0",
            config_yaml=CONFIG,
            config_source="test",
            project=project,
            budget_usd=budget,
        )
    return batch_id


def claimed(batch_id: str, cost_usd: float = 0.0) -> ClaimedItem:
    return ClaimedItem(
        id=1, batch_id=batch_id, external_id="x0", text="card charged", expected=None,
        fields={}, tier="t0", attempts=0, cost_usd=cost_usd, last_output=None, last_error=None,
    )  # fmt: skip


def figures(batch_id: str) -> tuple[float | None, float, float]:
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.budget_usd, batch.spent_usd, batch.reserved_usd


def run(item: ClaimedItem, cfg: RoutingConfig, layers: list[Middleware]):  # type: ignore[no-untyped-def]
    async def no_sleep(_: float) -> None:
        return None

    return asyncio.run(run_item(item, cfg, "tickets", middleware=layers, sleep=no_sleep))


def test_reserve_is_conditional_and_settle_turns_it_into_spend(ledger: str) -> None:
    batch_id = new_batch(budget=1.0)
    with session_scope() as session:
        assert reserve(session, batch_id, 0.6).ok
        refused = reserve(session, batch_id, 0.6)
        assert not refused.ok
        assert refused.reason == (
            f"budget of $1.0000 for batch {batch_id} exhausted "
            "(spent $0.0000, $0.6000 held by calls in flight)"
        )
        settle(session, batch_id, reserved=0.6, actual=0.25)
        assert reserve(session, batch_id, 0.75).ok  # 0.25 spent + 0.75 = the budget exactly
        assert not reserve(session, batch_id, 0.01).ok
    assert figures(batch_id) == (1.0, 0.25, 0.75)


def test_a_batch_without_a_budget_still_tracks_its_spend(ledger: str) -> None:
    batch_id = new_batch()
    with session_scope() as session:
        assert reserve(session, batch_id, 5.0).ok
        settle(session, batch_id, reserved=5.0, actual=4.0)
        settle(session, batch_id, reserved=1.0, actual=0.0)  # never below zero
    assert figures(batch_id) == (None, 4.0, 0.0)


def test_a_refusing_project_takes_the_batch_reservation_back(ledger: str) -> None:
    batch_id = new_batch(budget=10.0, project="acme")
    other = new_batch(budget=100.0, project="acme")
    with session_scope() as session:
        assert reserve(session, other, 0.5).ok  # before the project has a budget
        settle(session, other, 0.5, 0.5)
        row = set_project_budget(session, "acme", 1.0)
        # A new project budget starts from what its batches spent (tracked by their own
        # budgets here; from their attempt rows for batches no budget limited).
        assert (row.spent_usd, row.reserved_usd) == (0.5, 0.0)
        assert reserve(session, batch_id, 0.4).ok
        refused = reserve(session, batch_id, 0.2)
    assert refused.reason == (
        "budget of $1.0000 for project acme exhausted "
        "(spent $0.5000, $0.4000 held by calls in flight)"
    )
    assert figures(batch_id) == (10, 0, money(0.4))  # only the first reservation
    with session_scope() as session:
        settle(session, batch_id, 0.4, 0.1)
        project = session.get(ProjectBudget, "acme")
        assert project is not None
        assert (project.spent_usd, project.reserved_usd) == (money(0.6), 0)


def test_each_call_reserves_its_estimate_and_settles_its_cost(ledger: str, provider) -> None:
    seen: list[tuple[float, float]] = []

    class Spy(Middleware):
        async def after_call(self, ctx, record, result):  # type: ignore[no-untyped-def]
            seen.append(figures(ctx.item.batch_id)[1:])  # while the call is still reserved

    batch_id = new_batch(budget=1.0)
    outcome = run(claimed(batch_id), config(), [BudgetGuard(), Spy()])
    assert outcome.next_state == "succeeded"
    [(spent, reserved)] = seen
    assert spent == 0 and float(reserved) == pytest.approx((10 * 1 + 100 * 10) / 1e6, rel=0.3)
    assert figures(batch_id) == (1, money(outcome.attempts[0].cost_usd), 0)
    with session_scope() as session:
        assert batch_status(session, batch_id).spent_usd == money(30 / 1e6)


def test_an_exhausted_budget_parks_the_item_and_pauses_the_batch(ledger: str, provider) -> None:
    batch_id = new_batch(budget=0.0005)  # less than one call's estimate
    outcome = run(claimed(batch_id), config(), [BudgetGuard()])
    assert provider.calls == 0 and outcome.attempts == []
    assert outcome.parked and outcome.next_state == "queued"
    assert outcome.pause_reason == (
        f"budget of $0.0005 for batch {batch_id} exhausted (spent $0.0000)"
    )
    with session_scope() as session:
        session.execute(update(Batch).values(state="running"))
    with session_scope() as session:
        from ledger.transitions import claim_items

        claim_items(session, [1], "t0", "token")
        record_outcomes(session, [outcome])
    with session_scope() as session:
        status = batch_status(session, batch_id)
    assert (status.state, status.paused_reason) == ("paused", outcome.pause_reason)
    assert status.as_dict()["budget_usd"] == money(0.0005) and status.reserved_usd == 0


def test_a_later_denial_gives_the_reservation_back(ledger: str, provider) -> None:
    class Refuse(Middleware):
        async def before_call(self, ctx: CallContext) -> Denied | None:
            return Denied("not now")

    batch_id = new_batch(budget=1.0)
    outcome = run(claimed(batch_id), config(), [BudgetGuard(), Refuse()])
    assert outcome.parked and provider.calls == 0
    assert figures(batch_id) == (1.0, 0.0, 0.0)


def test_the_spend_cap_fails_an_item_that_already_spent_it(ledger: str, provider) -> None:
    batch_id = new_batch()
    outcome = run(claimed(batch_id, cost_usd=0.0045), config("0.005"), [BudgetGuard()])
    assert provider.calls == 0 and outcome.next_state == "failed" and not outcome.parked
    assert outcome.error is not None and "spend cap of $0.0050 per item reached" in outcome.error
    assert outcome.pause_reason is None


def test_the_spend_cap_counts_this_rounds_calls(ledger: str, provider) -> None:
    # Each failed call is billed $0.001 (1,000 input tokens); the estimate is ~$0.00101, so
    # with a $0.0028 cap the third call would pass it: two calls, then the item fails.
    billed = Usage(input_tokens=1000, output_tokens=0)
    provider.script = [
        ProviderError(ErrorClass.TRANSIENT, "HTTP 500", billed_usage=billed) for _ in range(4)
    ]
    batch_id = new_batch()
    outcome = run(claimed(batch_id), config("0.0028"), [BudgetGuard()])
    assert provider.calls == 2 and len(outcome.attempts) == 2
    assert outcome.next_state == "failed"
    assert "spent $0.0020" in (outcome.error or "")
    # No budget limits this batch: the guard made no reservation and kept no per-call figures.
    assert figures(batch_id) == (None, 0.0, 0.0)


def test_a_cap_wide_enough_lets_the_item_through(ledger: str, provider) -> None:
    batch_id = new_batch()
    outcome = run(claimed(batch_id, cost_usd=0.001), config("0.01"), [BudgetGuard()])
    assert outcome.next_state == "succeeded"


def test_a_call_refused_for_what_others_hold_waits_for_them_to_settle(
    ledger: str, provider
) -> None:
    import threading

    batch_id = new_batch(budget=0.0015)
    with session_scope() as session:  # another worker's call holds $0.001 of the $0.0015
        assert reserve(session, batch_id, 0.001).ok

    def other_call_ends() -> None:
        with session_scope() as session:
            settle(session, batch_id, reserved=0.001, actual=0.0002)

    threading.Timer(0.3, other_call_ends).start()
    guard = BudgetGuard(wait_s=10, poll_s=0.05)
    outcome = run(claimed(batch_id), config(), [guard])
    assert outcome.next_state == "succeeded" and provider.calls == 1
    assert figures(batch_id) == (money(0.0015), money(0.0002) + money(30 / 1e6), 0)


def test_a_call_that_cannot_fit_even_after_the_others_pauses_at_once(ledger: str, provider) -> None:
    batch_id = new_batch(budget=0.0015)
    with session_scope() as session:
        assert reserve(session, batch_id, 0.001).ok
        settle(session, batch_id, reserved=0.001, actual=0.001)  # spent: no room left
    guard = BudgetGuard(wait_s=10, poll_s=0.05)
    outcome = run(claimed(batch_id), config(), [guard])
    assert outcome.parked and outcome.pause_reason is not None and provider.calls == 0


def test_a_budget_set_on_a_running_batch_starts_from_its_recorded_calls(ledger: str) -> None:
    from sqlalchemy import insert

    from ledger.budgets import budget_applies, set_batch_budget
    from ledger.models import Attempt, Item

    batch_id = new_batch(project="acme")
    with session_scope() as session:
        assert not budget_applies(session, batch_id)  # workers skip the ledger per call
        item_id = session.query(Item.id).filter(Item.batch_id == batch_id).scalar()
        session.execute(
            insert(Attempt),
            [
                {"item_id": item_id, "batch_id": batch_id, "attempt_no": n, "tier": "t0",
                 "deployment": "d", "provider": "sim", "model": "m", "outcome": "passed",
                 "cost_usd": 0.15, "prices": {}, "verdicts": []}
                for n in (1, 2)
            ],
        )  # fmt: skip
    with session_scope() as session:
        batch = set_batch_budget(session, batch_id, 1.0)
        assert budget_applies(session, batch_id)
        assert batch.spent_usd == money(0.30)
        project = set_project_budget(session, "acme", 5.0)
        assert project.spent_usd == money(0.30)  # the batch's tracked figure now


def test_hundreds_of_calls_at_once_ask_the_ledger_once_whether_a_budget_applies(
    ledger: str, provider
) -> None:  # type: ignore[no-untyped-def]
    """A busy worker's calls all find the answer missing (or stale) at the same moment: they
    wait for one lookup instead of each sending its own query (a P2 profile: 17% of the
    worker's threads in these queries)."""
    batch_id = new_batch(budget=None, n=200)
    guard = BudgetGuard()
    lookups: list[str] = []
    original = guard._budget_applies

    def counted(batch: str) -> bool:
        lookups.append(batch)
        time.sleep(0.05)  # the query takes a while: the other calls arrive meanwhile
        return original(batch)

    guard._budget_applies = counted  # type: ignore[method-assign]

    async def many() -> list[bool]:
        return await asyncio.gather(*(guard._limited(batch_id) for _ in range(200)))

    assert asyncio.run(many()) == [False] * 200
    assert lookups == [batch_id]
    guard.recheck_s = 0.0  # stale at once: the next burst asks once more, not 200 times
    time.sleep(0.01)
    assert asyncio.run(many()) == [False] * 200
    assert lookups == [batch_id, batch_id]
