"""The calls the race tests make from several processes at once (see tests/helpers/race.py).

Each is what a worker, the poller or the reconciler does, through the same ledger functions,
each in its own transaction as they do it. `index` is the racing process's number.
"""

from __future__ import annotations

from typing import Any

from ledger.db import get_engine, session_scope


def warm_up(url: str) -> None:
    with get_engine(url).connect() as connection:
        connection.exec_driver_sql("SELECT 1")


def claim(index: int, item_ids: list[int], tier: str) -> list[int]:
    """A worker's claim of a chunk (a message delivered to several workers at once)."""
    from ledger.transitions import claim_items

    with session_scope() as session:
        return [item.id for item in claim_items(session, item_ids, tier, f"racer-{index}")]


def record(index: int, outcomes: list[Any]) -> tuple[list[int], list[str]]:
    """A worker's write of its chunk's outcomes (the same claim's outcome written twice: a
    worker presumed dead and its redelivered message's twin, or a retried commit)."""
    from ledger.transitions import record_outcomes

    with session_scope() as session:
        written, finished = record_outcomes(session, outcomes)
    return [o.item_id for o in written], finished


def form(index: int, batch_id: str, tier: str, per_batch: int) -> list[str]:
    """The poller's forming step, at the ledger level: read the staged items of a group and
    assign them to provider batches of `per_batch`, in one transaction."""
    from ledger.provider_batches import create_provider_batch, staged_items

    formed = []
    with session_scope() as session:
        items = staged_items(session, batch_id, tier)
        for start in range(0, len(items), per_batch):
            ids = [item.id for item in items[start : start + per_batch]]
            formed.append(
                create_provider_batch(
                    session,
                    batch_id=batch_id,
                    tier=tier,
                    deployment="cheap",
                    provider="openai",
                    model="gpt-4o-mini",
                    item_ids=ids,
                    request_bytes=0,
                )  # fmt: skip
            )
    return formed


def poll(index: int) -> dict:
    """A whole deferred poll (beat's task, or `batchrouter deferred poll`)."""
    from dataclasses import asdict

    from worker.deferred.poller import poll_once

    summary = asdict(poll_once(force=True))
    return {key: summary.get(key) for key in ("formed", "submitted", "errors", "locked_by")}


def take_lock(index: int, name: str, lease_s: float) -> bool:
    from ledger.locks import acquire, new_holder

    with session_scope() as session:
        return acquire(session, name, f"{new_holder()}-{index}", lease_s)


def reserve(index: int, batch_id: str, amount: float, tries: int, actual: float) -> int:
    """A worker's budget reservation before each call, settled to `actual` after it."""
    from ledger.budgets import reserve as reserve_budget
    from ledger.budgets import settle

    granted = 0
    for _ in range(tries):
        with session_scope() as session:
            ok = reserve_budget(session, batch_id, amount).ok
        if ok:
            granted += 1
            with session_scope() as session:
                settle(session, batch_id, amount, actual)
    return granted


def store_cache(index: int, entries: list[Any], hits: list[str]) -> int:
    """Two workers answering the same request before either committed: both store it, and
    both count the hits they served."""
    from ledger.cache import count_hits, store

    with session_scope() as session:
        stored = store(session, entries)
        count_hits(session, hits)
    return stored


def reconcile(index: int, queued_grace_s: float, running_timeout_s: float) -> dict:
    """`batchrouter reconcile` (or beat's reconcile task) on several hosts at once."""
    from dataclasses import asdict

    from worker.reconcile import reconcile as run

    return asdict(run(running_timeout_s=running_timeout_s, queued_grace_s=queued_grace_s))
