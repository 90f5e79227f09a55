"""A batch's progress, and `status` read straight from PostgreSQL.

`batchrouter status` is polled by scripts and people; issue 19 asked for an answer in under
half a second, whole process, at 100k items. Loading SQLAlchemy's ORM alone takes longer than
that on a small host, so for a PostgreSQL ledger (psycopg) `read_status` runs the same three
queries as `ledger.batches.batch_status` through psycopg directly: the batch (by id, unique
id prefix, or newest of that name), its items counted by state and tier (an index-only scan
on ix_items_batch_state_tier), the live reservations, and (for a batch no budget of its own
tracks) the sum of its attempts' cost. Any other ledger, or a URL with
options, returns None and the caller takes the SQLAlchemy path. tests/batchrouter/
test_status_scale.py checks that both paths give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ledger.errors import (
    SHOWN_CANDIDATES,
    UnknownBatch,
    ambiguous,
    hide_password,
    migration_head,
    schema_error,
)
from ledger.money import ZERO, money

SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)  # = ledger.models.TERMINAL_STATES


@dataclass
class BatchStatus:
    batch_id: str
    name: str | None
    task_type: str
    total: int
    done: int
    finished: bool
    state: str = "running"  # running | paused | cancelled | finished (see shown_state)
    paused_reason: str | None = None
    by_state: dict[str, int] = field(default_factory=dict)
    by_tier_state: dict[tuple[str, str], int] = field(default_factory=dict)
    budget_usd: Decimal | None = None  # None: no budget of its own
    spent_usd: Decimal = ZERO  # what its calls cost (the budget's figure, or its attempts')
    reserved_usd: Decimal = ZERO  # held by calls in flight

    @property
    def succeeded(self) -> int:
        return self.by_state.get(SUCCEEDED, 0)

    @property
    def failed(self) -> int:
        return self.by_state.get(FAILED, 0)

    def as_dict(self) -> dict:
        """Money as Decimal: write it with ledger.money.dumps, which keeps it exact."""
        return {
            "batch_id": self.batch_id,
            "name": self.name,
            "task_type": self.task_type,
            "total": self.total,
            "done": self.done,
            "finished": self.finished,
            "state": self.state,
            "paused_reason": self.paused_reason,
            "budget_usd": self.budget_usd,
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "by_state": self.by_state,
            "by_tier": [
                {"tier": tier, "state": state, "items": count}
                for (tier, state), count in sorted(self.by_tier_state.items())
            ],
        }


def shown_state(state: str, finished: bool) -> str:
    """The state `status` shows: a batch whose every item has ended is `finished`, not still
    `running` (its stored state only says whether workers may take its items); a cancelled
    one stays `cancelled`, and a paused one with nothing left to pause is finished too."""
    return "finished" if finished and state != "cancelled" else state


BATCH_COLUMNS = "id, name, task_type, total, state, paused_reason, budget_usd, spent_usd"
# A batch without a budget of its own is not tracked call by call (workers skip the reserve and
# settle round trips): what it spent is the sum of its attempts, as ledger.budgets.recorded_spend.
ATTEMPTS_SPENT = "SELECT coalesce(sum(cost_usd), 0) FROM attempts WHERE batch_id = %s"


def read_status(url: str, batch_ref: str) -> BatchStatus | None:
    """The batch's status read with psycopg alone, or None when `url` is not a plain
    PostgreSQL URL (the caller then uses ledger.batches.batch_status)."""
    for scheme in ("postgresql+psycopg://", "postgresql://"):
        if url.startswith(scheme) and "?" not in url:
            conninfo = "postgresql://" + url[len(scheme) :]
            break
    else:
        return None
    import psycopg

    with psycopg.connect(conninfo) as connection:
        exists = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
        rows = (
            [r[0] for r in connection.execute("SELECT version_num FROM alembic_version")]
            if exists and exists[0]
            else []
        )
        current = rows[0] if len(rows) == 1 else (None if not rows else ", ".join(sorted(rows)))
        head = migration_head()
        if current != head:
            raise schema_error(hide_password(url), current, head)
        batch = _find(connection, batch_ref)
        counts = connection.execute(
            "SELECT tier, state, count(*) FROM items WHERE batch_id = %s GROUP BY state, tier",
            (batch[0],),
        ).fetchall()
        reserved = connection.execute(
            "SELECT coalesce(sum(amount_usd), 0) FROM budget_reservations "
            "WHERE batch_id = %s AND expires_at >= now()",
            (batch[0],),
        ).fetchone()
        spent = batch[7] if batch[6] is not None else None
        if spent is None:
            found = connection.execute(ATTEMPTS_SPENT, (batch[0],)).fetchone()
            spent = found[0] if found else None
    by_tier_state = {(tier, state): count for tier, state, count in counts}
    by_state: dict[str, int] = {}
    for (_, state), count in by_tier_state.items():
        by_state[state] = by_state.get(state, 0) + count
    done = sum(by_state.get(state, 0) for state in TERMINAL)
    batch_id, name, task_type, total, state, paused_reason, budget_usd, _ = batch
    return BatchStatus(
        batch_id=batch_id,
        name=name,
        task_type=task_type,
        total=total,
        done=done,
        finished=done >= total,
        state=shown_state(state, done >= total),
        paused_reason=paused_reason,
        by_state=by_state,
        by_tier_state=by_tier_state,
        budget_usd=None if budget_usd is None else money(budget_usd),
        spent_usd=money(spent),
        reserved_usd=money(reserved[0] if reserved else None),
    )


def _find(connection, batch_ref: str) -> tuple:  # type: ignore[no-untyped-def]
    """As ledger.batches.find_batch: by id, by unique id prefix, by unique name; a prefix or
    name of several batches raises AmbiguousBatch listing them."""
    found = connection.execute(
        f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = %s", (batch_ref,)
    ).fetchone()
    if found is not None:
        return tuple(found)
    prefix = batch_ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    candidates = f"{BATCH_COLUMNS}, created_at FROM batches WHERE"
    order = f"ORDER BY created_at DESC, id LIMIT {SHOWN_CANDIDATES + 1}"
    by_prefix = connection.execute(
        f"SELECT {candidates} id LIKE %s {order}", (prefix + "%",)
    ).fetchall()
    if len(by_prefix) == 1:
        return tuple(by_prefix[0])[:-1]
    by_name = connection.execute(f"SELECT {candidates} name = %s {order}", (batch_ref,)).fetchall()
    if len(by_name) == 1:
        return tuple(by_name[0])[:-1]
    for kind, rows in (("name", by_name), ("id prefix", by_prefix)):
        if rows:  # (id, name, created_at, total)
            total = BATCH_COLUMNS.split(", ").index("total")
            raise ambiguous(batch_ref, kind, [(r[0], r[1], r[-1], r[total]) for r in rows])
    raise UnknownBatch(f"no batch {batch_ref!r} in the ledger")
