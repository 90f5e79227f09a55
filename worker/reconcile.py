"""The reconciler: put back on the broker every item the ledger says is still waiting.

Run it at any time, from any number of hosts (`batchrouter reconcile`, or the beat task every
minute). It re-queues items claimed by a worker whose lease lapsed (killed, host lost or cut
off: `take_over_lapsed_claims`, which beat also runs on its own every
BATCHROUTER_LEASE_CHECK_INTERVAL seconds), re-publishes queued items that no message names
(Redis restarted and lost its lists, a publish failed after the ledger commit), releases budget reservations whose lease ended (their worker
died mid-call), and purges expired response-cache entries. Claims are compare-and-set, so a
message published twice is harmless: the second finds nothing to claim. Each repair is a
compare-and-set too, so reconcilers running at once repair each item once: a stale claim is
requeued by one UPDATE, and a stranded queued item is stamped before it is republished
(ledger.lifecycle.mark_republished), so only one of them publishes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from ledger.budgets import release_expired
from ledger.cache import purge_expired
from ledger.db import session_scope, with_db_retry
from ledger.leases import purge_lapsed_leases, requeue_lapsed_claims, running_holders
from ledger.lifecycle import mark_republished, queued_items_older_than
from ledger.locks import _dead_here
from ledger.models import Item, ItemState
from routing.settings import get_settings
from worker.broker_state import live_item_ids
from worker.publish import publish_items

log = logging.getLogger("batchrouter.reconcile")


@dataclass
class ReconcileResult:
    requeued_stale: int = 0  # claimed by a worker whose lease lapsed (or that never reported)
    republished: dict[str, int] = field(default_factory=dict)  # tier -> items put back
    broker_checked: bool = False  # whether live messages could be listed
    cache_purged: int = 0  # expired response-cache entries deleted
    reservations_released: int = 0  # budget holds of dead workers, counted as spent


def requeue_lapsed(unleased_timeout_s: float) -> dict[str, list[int]]:
    """Re-queue (in the ledger) the running items of workers whose lease lapsed, or that ran on
    this host in a process that is gone (no need to wait for its lease); items claimed without
    a lease (by a worker older than leases) once claimed `unleased_timeout_s` ago."""

    def repair() -> dict[str, list[int]]:
        with session_scope() as session:
            dead = [holder for holder in running_holders(session) if _dead_here(holder)]
            return requeue_lapsed_claims(session, unleased_timeout_s, dead)

    return with_db_retry(repair, what="reconcile")


def take_over_lapsed_claims(unleased_timeout_s: float | None = None) -> dict[str, int]:
    """The lease check (beat, every BATCHROUTER_LEASE_CHECK_INTERVAL seconds): put the items of
    lapsed leases back on their queues; return how many per tier. Cheap when nothing lapsed:
    one UPDATE over the running items."""
    settings = get_settings()
    stale = requeue_lapsed(unleased_timeout_s or float(settings.visibility_timeout))
    for tier, ids in stale.items():
        publish_items(sorted(ids), tier, settings.chunk_size)
    if stale:
        log.warning(
            "lease check: took over %d items of lapsed leases %s",
            sum(len(ids) for ids in stale.values()),
            {tier: len(ids) for tier, ids in stale.items()},
        )
    return {tier: len(ids) for tier, ids in stale.items()}


def reconcile(
    running_timeout_s: float | None = None, queued_grace_s: float = 30.0
) -> ReconcileResult:
    """`running_timeout_s`: how old an unacked message (and a claim made without a lease)
    must be to count as dead; default the visibility timeout."""
    settings = get_settings()
    running_timeout_s = running_timeout_s or float(settings.visibility_timeout)
    result = ReconcileResult()

    def look() -> tuple[dict[str, list[int]], list[str]]:
        # A read (a large backlog must not hold SQLite's write lock): what it finds is only a
        # candidate until mark_republished below takes it.
        with session_scope(readonly=True) as session:
            waiting = queued_items_older_than(session, queued_grace_s)
            tiers = list(
                session.scalars(
                    select(Item.tier).where(Item.state == ItemState.QUEUED.value).distinct()
                )
            )
        return waiting, tiers

    stale = requeue_lapsed(running_timeout_s)
    waiting, tiers = with_db_retry(look, what="reconcile")

    def purge() -> tuple[int, int]:
        with session_scope() as session:
            purge_lapsed_leases(session)
            return purge_expired(session), release_expired(session)

    try:  # housekeeping: a failure here must not stop the repair below
        result.cache_purged, result.reservations_released = with_db_retry(purge, what="purge")
    except Exception:
        log.exception("reconcile: purging expired cache entries and reservations failed")
    result.requeued_stale = sum(len(ids) for ids in stale.values())
    live = live_item_ids(settings, tiers, unacked_max_age_s=running_timeout_s)
    result.broker_checked = live is not None
    stranded: list[int] = []
    for tier, ids in waiting.items():
        candidates = set(ids) - set(stale.get(tier, []))
        if live is not None:
            candidates -= live
        stranded.extend(candidates)

    def take() -> dict[str, list[int]]:
        with session_scope() as session:
            return mark_republished(session, stranded, queued_grace_s)

    taken = with_db_retry(take, what="reconcile") if stranded else {}
    for tier in set(stale) | set(taken):
        # a stale claim's old message is dead anyway: its items go back whatever the broker says
        back = set(stale.get(tier, [])) | set(taken.get(tier, []))
        if back:
            publish_items(sorted(back), tier, settings.chunk_size)
            result.republished[tier] = len(back)
    if result.requeued_stale or result.republished:
        log.warning(
            "reconcile: %d stale claims requeued, republished %s",
            result.requeued_stale,
            result.republished,
        )
    return result
