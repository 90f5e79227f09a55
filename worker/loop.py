"""One long-lived asyncio event loop per worker process, on a background thread.

Celery tasks are synchronous; provider calls are async. Running `asyncio.run()` per task closes
the loop that the pooled httpx client is bound to ("Event loop is closed"). Instead every task,
whatever the pool (threads, solo, prefork), submits its coroutine to this one loop and waits.
A forked child notices the pid change and starts its own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            threading.Thread(target=serve, name="batchrouter-io", daemon=True).start()
            started.wait()
            _loop, _pid = loop, os.getpid()
        return _loop


_in_flight: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def in_flight_slots() -> asyncio.Semaphore:
    """The running loop's cap on items being worked on at once (BATCHROUTER_MAX_IN_FLIGHT).

    Celery slots x chunk size can exceed it; the excess items wait here, holding nothing but
    their claimed row, so a process's memory stays bounded whatever the pool settings.
    """
    loop = asyncio.get_running_loop()
    slots = _in_flight.get(loop)
    if slots is None:
        from routing.settings import get_settings

        for closed in [lp for lp in _in_flight if lp.is_closed()]:
            del _in_flight[closed]
        slots = _in_flight[loop] = asyncio.Semaphore(get_settings().max_in_flight)
    return slots


_running: set[concurrent.futures.Future] = set()
_running_lock = threading.Lock()


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` on the process's loop from any thread and return its result. Raises
    `concurrent.futures.CancelledError` when `cancel_running` stopped it."""
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    with _running_lock:
        _running.add(future)
    try:
        return future.result(timeout)
    finally:
        with _running_lock:
            _running.discard(future)


def start(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Like `run`, without waiting: the caller works while the coroutine runs (a chunk records
    its items as they finish) and must pass the future to `settled` when it is done with it.
    `cancel_running` reaches it meanwhile."""
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    with _running_lock:
        _running.add(future)
    return future


def settled(future: concurrent.futures.Future) -> None:
    """The caller of `start` no longer waits for `future`."""
    with _running_lock:
        _running.discard(future)


def cancel_running() -> int:
    """Cancel every coroutine a task is waiting for (a stopping worker's time is up); return
    how many. Their tasks see `concurrent.futures.CancelledError`."""
    with _running_lock:
        running = list(_running)
    return sum(1 for future in running if future.cancel())


def close() -> None:
    """Close the loop's pooled HTTP clients and stop it (worker shutdown)."""
    global _loop
    with _lock:
        loop, _loop = _loop, None
    if loop is None or not loop.is_running():
        return
    from providers.http import aclose_client

    try:
        asyncio.run_coroutine_threadsafe(aclose_client(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
