"""Lock the rows of items a writer is about to change, and read who holds them.

The journal's intents and a chunk's outcomes both start here: the rows stay locked until the
commit (PostgreSQL; SQLite has one writer at a time), in id order so that two writers of
overlapping chunks cannot deadlock, and the caller keeps only what a current claim (its tier
and claim number) still holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from ledger.models import Item, ItemState

_ITEMS = cast(Table, Item.__table__)
_COLUMNS = (_ITEMS.c.id, _ITEMS.c.tier, _ITEMS.c.claims, _ITEMS.c.duplicates)


def _locking(*held_by: Any) -> Any:
    """The rows among `h_ids` that `held_by` says are held, locked in id order."""
    wanted = _ITEMS.c.id.in_(bindparam("h_ids", expanding=True))
    return select(*_COLUMNS).where(wanted, *held_by).order_by(_ITEMS.c.id).with_for_update()


# Built once (a statement built per chunk had its cache key computed again every time).
_RUNNING = _locking(_ITEMS.c.state == ItemState.RUNNING.value)
_IN_PROVIDER_BATCH = _locking(
    _ITEMS.c.state == ItemState.DEFERRED.value,
    _ITEMS.c.provider_batch_id == bindparam("h_provider_batch"),
)


def lock_held(
    session: Session, item_ids: Iterable[int], provider_batch_id: str | None = None
) -> list[Any]:
    """Rows (id, tier, claims, duplicates) of these items that a worker's claim holds
    (`running`), or, with `provider_batch_id`, that this provider batch holds (`deferred`)."""
    ids = sorted(set(item_ids))
    if provider_batch_id is None:
        return list(session.execute(_RUNNING, {"h_ids": ids}))
    params = {"h_ids": ids, "h_provider_batch": provider_batch_id}
    return list(session.execute(_IN_PROVIDER_BATCH, params))
