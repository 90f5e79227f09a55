"""Run the deferred poller and SIGKILL this process at one crash point (the fault tests' child).

    python -m tests.helpers.deferred_crash_child after_upload|after_create|after_download|mid_write

The kill is real (no finally blocks, no rollback code runs), at the point where a poller on a
host that loses power would stop: right after the provider answered, before the ledger heard.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from ledger import provider_batches
from worker.deferred import poller


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _Dying:
    """The real batch client, except that the process dies right after the chosen call."""

    def __init__(self, real: Any, point: str) -> None:
        self.real, self.point = real, point

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        found = await self.real.prepare(*args, **kwargs)
        if self.point == "after_upload":
            _die()
        return found

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        found = await self.real.create(*args, **kwargs)
        if self.point == "after_create":
            _die()
        return found

    async def results(self, *args: Any, **kwargs: Any) -> Any:
        found = await self.real.results(*args, **kwargs)
        if self.point == "after_download":
            _die()
        return found


def main(point: str) -> None:
    real_client = poller.get_batch_client
    poller.get_batch_client = lambda provider: _Dying(real_client(provider), point)  # type: ignore[assignment]
    if point == "mid_write":
        real_settle = provider_batches.settle_items

        def settle_then_die(*args: Any, **kwargs: Any) -> Any:
            real_settle(*args, **kwargs)  # written in the transaction, not committed
            _die()

        provider_batches.settle_items = settle_then_die  # type: ignore[assignment]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        poller.poll_once(force=True, submit_grace_s=0)
        time.sleep(0.2)
    sys.exit(3)  # never reached the crash point


if __name__ == "__main__":
    main(sys.argv[1])
