"""Spend control around each provider call: the item's spend cap, then the budgets.

`before_call` first checks the task type's `max_item_cost_usd`: when the item's spend so far
(earlier rounds, from the ledger, plus this round's calls) plus the call's estimate would pass
it, the call is not made and the item fails with the reason. Then it reserves the call's
estimate on the batch's and the project's budgets (ledger/budgets.py: one conditional UPDATE
per scope, atomic across workers and hosts); when a budget refuses, the item is parked and the
batch pauses with `budget of $X for batch B exhausted (spent $Y)` until the budget is raised.
A call refused only because of what other calls in flight hold waits (up to `wait_s`) for them
to settle first: they usually cost less than their estimate, and pausing at once would leave
that part of the budget unused.
`after_call` settles the reservation to what the call really cost; `release` (a later layer
denied the call) gives it back. A reservation's lease covers the call's longest possible life
(the rate limiter's wait, every timeout of the deployment) plus `BATCHROUTER_RESERVATION_MARGIN_S`:
a hold that outlives it belonged to a dead worker and is released (ledger/budgets.py).

The ledger calls are synchronous SQLAlchemy: they run in a thread, with the ledger's retry on
a lost connection, so the event loop keeps serving the other calls in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from ledger.budgets import Reservation, budget_applies, reserve, settle, usd
from ledger.db import session_scope, with_db_retry
from ledger.outcomes import AttemptRecord
from routing.settings import get_settings
from routing.types import CompletionResult, ProviderError
from worker.middleware import CallContext, Denied, Middleware

log = logging.getLogger("batchrouter.budget")


def spend_cap_denial(ctx: CallContext) -> Denied | None:
    """A Denied that fails the item when this call could take it past its spend cap."""
    cap = ctx.task.max_item_cost_usd
    if cap is None:
        return None
    spent = ctx.item.cost_usd + ctx.round_cost_usd
    estimate = ctx.estimated_cost_usd
    if spent + estimate <= cap:
        return None
    return Denied(
        f"spend cap of {usd(cap)} per item reached: spent {usd(spent)}, "
        f"the next call ({ctx.deployment_name}) may cost up to {usd(estimate)}",
        fail_item=True,
    )


def lease_s(ctx: CallContext) -> float:
    """How long a reservation may be held: the rate limiter's longest wait, then every timeout
    of one call, plus a margin. Past that, its worker is gone."""
    settings = get_settings()
    timeouts = ctx.deployment.timeouts
    call_s = timeouts.connect + timeouts.read + timeouts.write + timeouts.pool
    return settings.ratelimit_max_reserve_s + call_s + settings.reservation_margin_s


class BudgetGuard(Middleware):
    def __init__(
        self,
        database_url: str | None = None,
        *,
        wait_s: float = 10.0,
        poll_s: float = 0.25,
        recheck_s: float = 2.0,
    ) -> None:
        self.database_url = database_url  # None: the settings' ledger
        self.wait_s, self.poll_s = wait_s, poll_s
        # Most batches have no budget: ask the ledger whether one applies at most every
        # `recheck_s` seconds per batch, and make no per-call round trips for those without.
        # A budget set on a running batch takes effect within `recheck_s`.
        self.recheck_s = recheck_s
        self._applies: dict[str, tuple[bool, float]] = {}
        # The lookup under way per batch: the calls that find the answer stale meanwhile
        # (hundreds at once in a busy worker) wait for it instead of each asking the ledger.
        self._looking: dict[str, asyncio.Future[bool]] = {}
        self._reserved: dict[int, str | None] = {}  # id() of a holding context -> reservation

    def _budget_applies(self, batch_id: str) -> bool:
        def work() -> bool:
            with session_scope(self.database_url, readonly=True) as session:
                return budget_applies(session, batch_id)

        return with_db_retry(work, what="budget lookup")

    async def _limited(self, batch_id: str) -> bool:
        known = self._applies.get(batch_id)
        now = time.monotonic()
        if known is not None and now - known[1] <= self.recheck_s:
            return known[0]
        looking = self._looking.get(batch_id)
        if looking is None or looking.get_loop() is not asyncio.get_running_loop():
            looking = asyncio.ensure_future(asyncio.to_thread(self._budget_applies, batch_id))
            self._looking[batch_id] = looking

            def done(found: asyncio.Future[bool], batch: str = batch_id) -> None:
                if self._looking.get(batch) is found:
                    del self._looking[batch]
                if not found.cancelled() and found.exception() is None:
                    self._applies[batch] = (found.result(), now)

            looking.add_done_callback(done)
        return await asyncio.shield(looking)  # one waiter cancelled does not cancel the others'

    def _reserve(self, batch_id: str, amount: float, lease_s: float) -> Reservation:
        def work() -> Reservation:
            with session_scope(self.database_url) as session:
                return reserve(session, batch_id, amount, lease_s)

        return with_db_retry(work, what="budget reservation")

    def _settle(
        self, batch_id: str, reserved: float, actual: float, reservation_id: str | None
    ) -> None:
        def work() -> None:
            with session_scope(self.database_url) as session:
                settle(session, batch_id, reserved, actual, reservation_id)

        with_db_retry(work, what="budget settlement")

    async def before_call(self, ctx: CallContext) -> Denied | None:
        capped = spend_cap_denial(ctx)
        if capped is not None:
            return capped
        try:
            if not await self._limited(ctx.item.batch_id):
                return None
        except Exception as exc:  # no ledger, no spend: park it, the reconciler requeues
            log.exception("batch %s: budget lookup failed", ctx.item.batch_id)
            return Denied(f"budget lookup failed: {type(exc).__name__}")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                taken = await asyncio.to_thread(
                    self._reserve, ctx.item.batch_id, ctx.estimated_cost_usd, lease_s(ctx)
                )
            except Exception as exc:  # no ledger, no spend: park it, the reconciler requeues
                log.exception("batch %s: budget reservation failed", ctx.item.batch_id)
                return Denied(f"budget reservation failed: {type(exc).__name__}")
            if taken.ok:
                self._reserved[id(ctx)] = taken.id
                return None
            if not taken.may_fit_later or time.monotonic() >= deadline:
                log.warning("batch %s pauses: %s", ctx.item.batch_id, taken.reason)
                return Denied(taken.reason or "budget exhausted", pause_batch=True)
            await asyncio.sleep(self.poll_s * (0.5 + random.random()))

    async def after_call(
        self, ctx: CallContext, record: AttemptRecord, result: CompletionResult | ProviderError
    ) -> None:
        await self._settle_safely(ctx, record.cost_usd)

    async def release(self, ctx: CallContext) -> None:
        await self._settle_safely(ctx, 0.0)

    async def _settle_safely(self, ctx: CallContext, actual: float) -> None:
        if id(ctx) not in self._reserved:
            return  # no budget applied when the call was admitted: nothing was reserved
        reservation_id = self._reserved.pop(id(ctx))
        try:
            await asyncio.to_thread(
                self._settle, ctx.item.batch_id, ctx.estimated_cost_usd, actual, reservation_id
            )
        except Exception:  # the call happened: its outcome must still be recorded
            log.exception(
                "batch %s: settling a call's cost failed; its reservation stays held",
                ctx.item.batch_id,
            )
