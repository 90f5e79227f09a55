"""The worker's side of the call journal (ledger/journal.py): intents before calls, finals after.

One journal per event loop (so per worker process). Intents are awaited: the items of a chunk
start together, so their intents arrive in the same tick and go to the ledger in one
statement, and no call starts before its row is durable. Finals are not awaited: they are
collected and written every `flush_s` seconds (0.5 by default), so a finished call is durable
within about a second even while the rest of its chunk is still running. Finals of items whose
chunk outcome was recorded first are dropped (`forget`): the outcome wrote them.

Ledger work runs in a thread, with the ledger's retry on a lost connection, so the loop keeps
serving the calls in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ledger.db import session_scope, with_db_retry
from ledger.journal import IN_FLIGHT, Intent, write_finals, write_intents
from ledger.outcomes import AttemptRecord, ClaimedItem
from ledger.superseded import write_superseded

log = logging.getLogger("batchrouter.journal")


class LedgerUnavailable(RuntimeError):
    """The ledger could not take a call's intent: the call must not be made."""


class CallJournal:
    def __init__(self, database_url: str | None = None, flush_s: float = 0.5) -> None:
        self.database_url = database_url  # None: the settings' ledger
        self.flush_s = flush_s
        self._intents: list[tuple[Intent, asyncio.Future[bool]]] = []
        self._intent_writer: asyncio.Task[None] | None = None
        # (item id, attempt number, claim number) -> the call's outcome
        self._finals: dict[tuple[int, int, int], AttemptRecord] = {}
        self._final_writer: asyncio.Task[None] | None = None

    async def intent(self, item: ClaimedItem, record: AttemptRecord, estimate_usd: float) -> bool:
        """Write the call's row before the call; False when the item's claim is no longer this
        worker's (another worker took it over): then the call must not be made."""
        row = AttemptRecord(
            attempt_no=record.attempt_no,
            tier=record.tier,
            deployment=record.deployment,
            provider=record.provider,
            model=record.model,
            outcome=IN_FLIGHT,
            usage_estimated=True,
            cost_usd=estimate_usd,
            prices=record.prices,
        )
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._intents.append((Intent(item.id, item.batch_id, item.tier, item.claim_no, row), done))
        if self._intent_writer is None or self._intent_writer.done():
            self._intent_writer = asyncio.create_task(self._write_intents())
        return await done

    async def _write_intents(self) -> None:
        await asyncio.sleep(0)  # let the rest of the chunk's items add theirs
        while self._intents:
            group, self._intents = self._intents, []
            intents = [intent for intent, _ in group]
            try:
                written = await asyncio.to_thread(self._write, intents)
            except Exception as exc:
                log.error("call intents could not be written: %s", exc)
                for _, done in group:
                    if not done.done():
                        done.set_exception(LedgerUnavailable(f"ledger unavailable: {exc}"))
                continue
            for intent, done in group:
                if not done.done():
                    done.set_result((intent.item_id, intent.record.attempt_no) in written)

    def _write(self, intents: list[Intent]) -> set[tuple[int, int]]:
        def work() -> set[tuple[int, int]]:
            with session_scope(self.database_url) as session:
                return write_intents(session, intents)

        return with_db_retry(work, what="call intents")

    def settled(self, item: ClaimedItem, record: AttemptRecord) -> None:
        """The call's outcome is known: write it soon (not awaited)."""
        self._finals[(item.id, record.attempt_no, item.claim_no)] = record
        if self._final_writer is None or self._final_writer.done():
            self._final_writer = asyncio.create_task(self._write_finals())

    async def _write_finals(self) -> None:
        while self._finals:
            await asyncio.sleep(self.flush_s)
            group, self._finals = self._finals, {}
            if not group:
                continue
            finals = [(item_id, claim, record) for (item_id, _, claim), record in group.items()]
            try:
                await asyncio.to_thread(self._write_finals_now, finals)
            except Exception as exc:  # the intents stand, at their estimates: an upper bound
                log.error("%d call outcomes could not be written early: %s", len(finals), exc)

    def _write_finals_now(self, finals: list[tuple[int, int, AttemptRecord]]) -> None:
        def work() -> None:
            with session_scope(self.database_url) as session:
                calls = [(item_id, record) for item_id, _, record in finals]
                if write_finals(session, calls) < len(finals):
                    # Some rows are no longer in flight: the chunk's outcome wrote them, or a
                    # takeover claim declared them lost (then they are kept as superseded).
                    write_superseded(session, finals)

        with_db_retry(work, what="call outcomes")

    async def flush(self) -> None:
        """Write the pending finals now (a stopping worker, before it hands its work back)."""
        group, self._finals = self._finals, {}
        if group:
            finals = [(item_id, claim, record) for (item_id, _, claim), record in group.items()]
            await asyncio.to_thread(self._write_finals_now, finals)

    def forget(self, item_ids: Iterable[int]) -> None:
        """These items' outcomes are recorded: their pending finals need no write of their
        own. Call on the loop's thread."""
        ids = set(item_ids)
        for key in [key for key in self._finals if key[0] in ids]:
            del self._finals[key]


_journals: dict[asyncio.AbstractEventLoop, CallJournal] = {}


def current_journal() -> CallJournal:
    """The running loop's journal."""
    loop = asyncio.get_running_loop()
    journal = _journals.get(loop)
    if journal is None:
        for closed in [known for known in _journals if known.is_closed()]:
            del _journals[closed]
        journal = _journals[loop] = CallJournal()
    return journal
