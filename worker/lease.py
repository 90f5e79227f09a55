"""This worker process's lease on the items it claims, and the heartbeat that renews it.

One lease per process (a forked child makes its own). The first claim starts it, in the
claim's own transaction, so an item is never held by a lease that does not exist yet; from
then on a daemon thread renews it every third of BATCHROUTER_CLAIM_LEASE_S, on a small engine
of its own, so a busy pool never delays a renewal. While the ledger is unreachable the thread
tries every second and says so in the log at once: a worker cut off from the ledger knows
within seconds, and knows when its lease lapses (its items are then taken over by another
host, and what it still writes of them is kept as superseded calls: ledger/superseded.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ledger.db import make_engine, session_scope
from ledger.leases import release_lease, renew_lease
from ledger.locks import new_holder
from routing.settings import get_settings

log = logging.getLogger("batchrouter.lease")
RETRY_S = 1.0  # between renewals while the ledger is unreachable


class WorkerLease:
    def __init__(self, lease_s: float, url: str) -> None:
        self.lease_s, self.url = lease_s, url
        self.holder = new_holder()
        self._renewed = 0.0  # monotonic time a renewal began that then committed
        self._pending: float | None = None  # a renewal in a claim not yet committed
        self._failing_since: float | None = None
        self._lapsed_logged = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def every_s(self) -> float:
        return self.lease_s / 3

    def for_claim(self, session: Session) -> str:
        """The holder name to claim under; renews the lease in the claim's transaction unless
        the heartbeat renewed it recently (call `claim_committed` after the commit)."""
        began = time.monotonic()
        # The heartbeat renews every third of the lease; a claim renews only if it is late
        # (the first claim, or a heartbeat stalled): the claim then has half a lease at least.
        if began - self._renewed > self.lease_s / 2:
            renew_lease(session, self.holder, self.lease_s)
            self._pending = began
        return self.holder

    def claim_committed(self) -> None:
        """The claim (and the renewal in it) is durable: start the heartbeat."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._renewed_at(pending)
        self._start()

    def lapsed(self) -> bool:
        """Whether the lease may have run out (no renewal committed for a whole lease)."""
        return self._renewed > 0 and time.monotonic() - self._renewed > self.lease_s

    def _renewed_at(self, began: float) -> None:
        self._renewed = max(self._renewed, began)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._beat, name="batchrouter-lease", daemon=True
                )
                self._thread.start()

    def _beat(self) -> None:
        wait = self.every_s
        while not self._stop.wait(wait):
            wait = self.every_s if self.renew_now() else RETRY_S

    def renew_now(self) -> bool:
        began = time.monotonic()
        try:
            with session_scope(self.url, engine=self._own_engine()) as session:
                renew_lease(session, self.holder, self.lease_s)
        except Exception as exc:
            self._failed(began, exc)
            return False
        self._renewed_at(began)
        if self._failing_since is not None:
            log.warning(
                "lease %s renewed: the ledger is reachable again after %.0f s",
                self.holder,
                began - self._failing_since,
            )
        self._failing_since, self._lapsed_logged = None, False
        return True

    def _failed(self, now: float, exc: Exception) -> None:
        left = self.lease_s - (now - self._renewed)
        if self._failing_since is None:
            self._failing_since = now
            log.error(
                "lease %s: cannot reach the ledger to renew (%s: %s); its claims lapse in %.0f s",
                self.holder,
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
                max(left, 0.0),
            )
        elif left <= 0 and not self._lapsed_logged:
            self._lapsed_logged = True
            log.error(
                "lease %s lapsed: this worker's running items may be taken over by another "
                "worker; what it records of them now is kept as superseded calls",
                self.holder,
            )

    def _own_engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url, pool_size=1, max_overflow=1)
        return self._engine

    def release(self) -> None:
        """A stopping worker ends its lease: what it still holds may be taken at once."""
        self._stop.set()
        if self._renewed == 0.0:
            return
        try:
            with session_scope(self.url, engine=self._own_engine()) as session:
                release_lease(session, self.holder)
        except Exception as exc:  # it lapses by itself
            log.warning("lease %s could not be released (%s); it will lapse", self.holder, exc)


_leases: dict[int, WorkerLease] = {}
_leases_lock = threading.Lock()


def current_lease() -> WorkerLease:
    """This process's lease (one per pid: a forked child gets its own)."""
    pid = os.getpid()
    with _leases_lock:
        lease = _leases.get(pid)
        if lease is None:
            settings = get_settings()
            lease = _leases[pid] = WorkerLease(
                settings.claim_lease_s, settings.resolved_database_url()
            )
        return lease


def release_current() -> None:
    lease = _leases.get(os.getpid())
    if lease is not None:
        lease.release()
