"""A chunk's outcomes written in groups as its items finish, not when its slowest item ends.

The items run on the process's event loop; each finished outcome is handed to the chunk's
thread through a thread-safe queue. The thread writes a group when every item is done, or
when the oldest unwritten outcome has waited `record_flush_s`: at zero latency a chunk is
still one outcome transaction, and with a long-tailed provider the finished items (and their
escalations) reach the ledger within about the interval instead of waiting for the slowest call.

Exactly once, group by group: each group is one `record_outcomes` transaction, so a
redelivered message finds the recorded items settled (claim_items skips them) and continues
the rest from the journal. After a group's write fails (retries spent), no later group is
written: the chunk waits for its running items (their calls are journaled) and raises the
write's error, so the unwritten items come back with the message, as a whole chunk did before.
"""

from __future__ import annotations

import concurrent.futures
import queue
import time
from collections.abc import Callable

from ledger.outcomes import ItemOutcome

_ENDED = object()  # put on the queue when the chunk's coroutine has ended, however it ended


def record_as_finished(
    future: concurrent.futures.Future,
    finished: queue.SimpleQueue,
    total: int,
    write: Callable[[list[ItemOutcome]], None],
    flush_s: float,
) -> int:
    """Write the outcomes put on `finished` in groups until `total` arrived or `future` ended;
    return how many were handed to `write`. Re-raises the first failed write (after the
    coroutine ended), else leaves the future's own outcome (result, error, cancel) to the
    caller; outcomes that arrived but were not written then stay unwritten."""
    future.add_done_callback(lambda _: finished.put(_ENDED))
    pending: list[ItemOutcome] = []
    oldest = 0.0  # when the oldest pending outcome arrived
    handed = arrived = 0
    failed: BaseException | None = None
    ended = False
    while arrived < total and not ended:
        wait = None if not pending else max(0.0, oldest + flush_s - time.monotonic())
        try:
            got = [finished.get(timeout=wait)]
        except queue.Empty:
            got = []  # the oldest pending outcome has waited long enough
        # Everything that arrived meanwhile too: the items of a chunk end in bursts (one loop
        # tick answers many), and a wake-up per outcome was a thread switch per item.
        while got and arrived + len(got) < total and got[-1] is not _ENDED:
            try:
                got.append(finished.get_nowait())
            except queue.Empty:
                break
        for one in got:
            if one is _ENDED:
                ended = True
                break
            if not pending:
                oldest = time.monotonic()
            pending.append(one)
            arrived += 1
        due = pending and (arrived == total or time.monotonic() - oldest >= flush_s)
        if due and failed is None and not ended:
            group, pending = pending, []
            try:
                write(group)
                handed += len(group)
            except Exception as exc:  # the ledger is gone for now: write nothing more
                failed = exc
        elif failed is not None:
            pending = []
    if failed is not None:
        concurrent.futures.wait([future])  # the running items finish (and are journaled)
        raise failed
    return handed
