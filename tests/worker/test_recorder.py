"""worker/recorder.py on its own: how finished outcomes are grouped, and what happens when a
group's write fails while other items still run (nothing more is written; the error is raised
once they end). Plain objects stand for outcomes; no ledger is needed."""

from __future__ import annotations

import concurrent.futures
import queue
import threading

import pytest

from worker.recorder import record_as_finished


def test_outcomes_that_arrive_together_are_one_group() -> None:
    future: concurrent.futures.Future = concurrent.futures.Future()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    for n in range(5):
        finished.put(n)
    groups: list[list] = []
    assert record_as_finished(future, finished, 5, groups.append, flush_s=60) == 5
    assert groups == [[0, 1, 2, 3, 4]]


def test_a_burst_is_taken_in_one_wake_up_even_with_no_flush_wait() -> None:
    """Outcomes queued while the thread was busy are read together: with flush_s=0 each read
    is written at once, so one group means one read (one thread switch), not one per item."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    groups: list[list] = []
    writing, gate = threading.Event(), threading.Event()

    def write(group: list) -> None:
        groups.append(group)
        writing.set()
        gate.wait(5)  # a slow first write: the rest of the chunk ends meanwhile

    def rest_of_the_chunk() -> None:
        writing.wait(5)  # however loaded the machine, only after the first write began
        for n in range(4):
            finished.put(n)
        gate.set()

    finished.put("first")
    threading.Thread(target=rest_of_the_chunk, daemon=True).start()
    assert record_as_finished(future, finished, 5, write, flush_s=0) == 5
    assert groups == [["first"], [0, 1, 2, 3]]


def test_a_late_item_does_not_hold_the_finished_ones() -> None:
    future: concurrent.futures.Future = concurrent.futures.Future()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    groups: list[list] = []
    first_written = threading.Event()

    def write(group: list) -> None:
        groups.append(group)
        first_written.set()

    finished.put("fast-1")
    finished.put("fast-2")

    def late() -> None:
        assert first_written.wait(30)  # the slow item ends only after the fast ones are written
        finished.put("slow")

    threading.Thread(target=late, daemon=True).start()
    assert record_as_finished(future, finished, 3, write, flush_s=0.05) == 3
    assert groups == [["fast-1", "fast-2"], ["slow"]]


def test_after_a_failed_write_nothing_more_is_written_and_the_error_comes_once_all_end() -> None:
    future: concurrent.futures.Future = concurrent.futures.Future()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    written: list[list] = []
    tried: list[list] = []

    def write(group: list) -> None:
        tried.append(group)
        if len(tried) == 2:
            raise RuntimeError("ledger down")
        written.append(group)

    def items() -> None:
        finished.put("a")
        while len(tried) < 1:
            threading.Event().wait(0.01)
        finished.put("b")
        while len(tried) < 2:
            threading.Event().wait(0.01)
        finished.put("c")  # still running when b's write failed: never written
        finished.put("d")
        future.set_result(None)

    threading.Thread(target=items, daemon=True).start()
    with pytest.raises(RuntimeError, match="ledger down"):
        record_as_finished(future, finished, 4, write, flush_s=0.01)
    assert future.done()  # raised only after the running items ended
    assert written == [["a"]] and tried == [["a"], ["b"]]


def test_a_chunk_that_ends_early_leaves_its_unwritten_outcomes() -> None:
    """A stop (cancel) or LedgerUnavailable ends the coroutine before every item arrived: what
    arrived and was not written stays unwritten; the caller reads the future's error."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    groups: list[list] = []
    finished.put("a")
    future.cancel()
    assert record_as_finished(future, finished, 3, groups.append, flush_s=60) == 0
    assert groups == []
