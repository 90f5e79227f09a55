"""Named locks with a lease, kept in the ledger: at most one holder per name across every host
that shares the ledger, on SQLite and on PostgreSQL alike.

The deferred poller takes one (`deferred_poll`) for each poll, so beat on two hosts, a beat
task and an operator's `batchrouter deferred poll`, or two overlapping beat polls never walk
the provider batches at the same time.

Taking the lock is a compare-and-set, so the row count decides and no row lock is needed:

    INSERT INTO ledger_locks (name, holder, expires_at) VALUES (:n, NULL, <long ago>)
        ON CONFLICT DO NOTHING;
    UPDATE ledger_locks SET holder = :me, expires_at = :now + :lease
     WHERE name = :n AND (holder = :me OR holder IS NULL OR expires_at < :now);

On PostgreSQL two concurrent UPDATEs of the row queue on it and the second re-checks the WHERE
against the first's committed row (it no longer matches); on SQLite the write transactions
run one at a time. The holder renews the lease while it works; one that dies stops renewing
and its lease runs out. A holder on this same host whose process is gone is taken over at
once (a poller killed by the OOM killer should not stall the next poll for a whole lease).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ledger.db import session_scope, with_db_retry
from ledger.models import LedgerLock, utcnow

LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


def new_holder() -> str:
    """host:pid:nonce: unique per lease, and says where the holder runs."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LockState:
    holder: str | None
    expires_at: datetime


def acquire(session: Session, name: str, holder: str, lease_s: float) -> bool:
    """Take (or extend) the lock for `holder` unless someone else holds a live lease."""
    now = utcnow()
    session.execute(_insert_missing(session), {"name": name, "expires_at": LONG_AGO})
    taken = session.execute(
        update(LedgerLock)
        .where(
            LedgerLock.name == name,
            or_(
                LedgerLock.holder == holder,
                LedgerLock.holder.is_(None),
                LedgerLock.expires_at < now,
            ),
        )
        .values(holder=holder, expires_at=now + timedelta(seconds=lease_s))
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    state = current(session, name)
    if state is None or state.holder is None or not _dead_here(state.holder):
        return False
    # Its process is gone: take it over, still a compare-and-set on the dead holder's name.
    taken = session.execute(
        update(LedgerLock)
        .where(LedgerLock.name == name, LedgerLock.holder == state.holder)
        .values(holder=holder, expires_at=now + timedelta(seconds=lease_s))
    )
    return taken.rowcount == 1  # type: ignore[attr-defined]


def renew(session: Session, name: str, holder: str, lease_s: float) -> bool:
    """Extend the lease; False when `holder` no longer holds the lock (it was taken over)."""
    renewed = session.execute(
        update(LedgerLock)
        .where(LedgerLock.name == name, LedgerLock.holder == holder)
        .values(expires_at=utcnow() + timedelta(seconds=lease_s))
    )
    return renewed.rowcount == 1  # type: ignore[attr-defined]


def release(session: Session, name: str, holder: str) -> bool:
    released = session.execute(
        update(LedgerLock)
        .where(LedgerLock.name == name, LedgerLock.holder == holder)
        .values(holder=None, expires_at=utcnow())
    )
    return released.rowcount == 1  # type: ignore[attr-defined]


def current(session: Session, name: str) -> LockState | None:
    row = session.execute(
        select(LedgerLock.holder, LedgerLock.expires_at).where(LedgerLock.name == name)
    ).first()
    if row is None:
        return None
    expires = row.expires_at
    return LockState(row.holder, expires if expires.tzinfo else expires.replace(tzinfo=UTC))


class LeaseLost(RuntimeError):
    """The lease ran out and another process took the lock."""


class Lease:
    """One holder's use of a named lock: acquire once, renew between steps, release at the end.

    `renew` writes only when a quarter of the lease has passed since the last write, so a
    caller may call it before every step for free.
    """

    def __init__(self, name: str, lease_s: float, url: str | None = None) -> None:
        self.name, self.lease_s, self.url = name, lease_s, url
        self.holder = new_holder()
        self._renewed = 0.0
        self.held_by: LockState | None = None  # who held it when acquire() failed

    def acquire(self) -> bool:
        def take() -> bool:
            with session_scope(self.url) as session:
                if acquire(session, self.name, self.holder, self.lease_s):
                    return True
                self.held_by = current(session, self.name)
                return False

        got = with_db_retry(take, what=f"lock {self.name}")
        if got:
            self._renewed = time.monotonic()
        return got

    def renew(self) -> None:
        if time.monotonic() - self._renewed < self.lease_s / 4:
            return

        def extend() -> bool:
            with session_scope(self.url) as session:
                return renew(session, self.name, self.holder, self.lease_s)

        if not with_db_retry(extend, what=f"lock {self.name}"):
            raise LeaseLost(f"lost the lock {self.name!r} (lease of {self.lease_s:g} s ran out)")
        self._renewed = time.monotonic()

    def release(self) -> None:
        def free() -> None:
            with session_scope(self.url) as session:
                release(session, self.name, self.holder)

        with_db_retry(free, what=f"lock {self.name}")


def _dead_here(holder: str) -> bool:
    """Whether `holder` ran on this host in a process that no longer exists.

    "This host" is the hostname: processes that share one but not a PID namespace (containers
    with host networking) would take each other for dead, so give such containers their own
    hostnames (docker-compose.yml's services have them)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:120] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another lease of this process: alive by definition
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


_INSERTS: dict[str, Any] = {}


def _insert_missing(session: Session) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING of the lock's row (released, expired long ago)."""
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        else:  # pragma: no cover - the ledger runs on SQLite or PostgreSQL
            raise NotImplementedError(f"no insert-if-missing for {dialect}")
        _INSERTS[dialect] = insert(LedgerLock).on_conflict_do_nothing(
            index_elements=[LedgerLock.name]
        )
    return _INSERTS[dialect]
