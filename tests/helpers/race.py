"""Processes that make the same ledger call at the same moment, round after round.

`Racers(n)` spawns n processes (spawn context: no state shared with the test process, each
with its own engine and connections, like worker processes on one machine). `racers.run(name,
url, **kwargs)` sends one call (a function of tests/helpers/race_calls.py) to every process;
each prepares, waits at a shared barrier, and makes the call as soon as all are there, so the
calls really overlap. It returns each process's result, or the error it raised, as a string.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from typing import Any

BARRIER_TIMEOUT_S = 60


class Racers:
    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self.barrier = context.Barrier(count)
        self.inboxes = [context.Queue() for _ in range(count)]
        self.outbox = context.Queue()
        self.processes = [
            context.Process(
                target=_serve, args=(index, self.barrier, inbox, self.outbox), daemon=True
            )
            for index, inbox in enumerate(self.inboxes)
        ]
        for process in self.processes:
            process.start()

    def run(self, call: str, url: str, env: dict[str, str] | None = None, **kwargs: Any) -> list:
        """Every process makes `call(index, **kwargs)` at once against the ledger at `url`;
        their results in process order (an exception comes back as `Raised`)."""
        for inbox in self.inboxes:
            inbox.put((call, url, env or {}, kwargs))
        results: list[Any] = [None] * self.count
        for _ in range(self.count):
            index, result = self.outbox.get(timeout=BARRIER_TIMEOUT_S * 2)
            results[index] = result
        return results

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


class Raised(str):
    """What a racer raised (type, message and traceback), in place of its result."""


def _serve(index: int, barrier: Any, inbox: Any, outbox: Any) -> None:
    from routing.settings import get_settings
    from tests.helpers import race_calls

    while True:
        task = inbox.get()
        if task is None:
            return
        call, url, env, kwargs = task
        os.environ.update(env, BATCHROUTER_DATABASE_URL=url)
        get_settings.cache_clear()
        try:
            # Engine, schema check and connection before the barrier: the race is the call.
            race_calls.warm_up(url)
            barrier.wait(BARRIER_TIMEOUT_S)
            result: Any = getattr(race_calls, call)(index, **kwargs)
        except Exception as exc:  # reported, not raised: the test counts them
            result = Raised(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        outbox.put((index, result))
