"""Small helpers for the operations tests: free ports and polling."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Call `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the service is still starting
            last_error = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last_error!r})")


def run_closing_client(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), then close that loop's pooled provider client (providers/http.py), so
    no socket outlives its loop."""
    from providers import http

    async def main() -> T:
        try:
            return await coro
        finally:
            await http.aclose_client()

    return asyncio.run(main())
