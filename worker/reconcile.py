"""The reconciler: put back on the broker every item the ledger says is still waiting.

Run it at any time, from any number of hosts (`batchrouter reconcile`, or the beat task every
minute). It re-queues items claimed by a worker that never reported (killed, host lost), and
re-publishes queued items that no message names (Redis restarted and lost its lists, a publish
failed after the ledger commit), releases budget reservations whose lease ended (their worker
died mid-call), and purges expired response-cache entries. Claims are compare-and-set, so a message published twice is
harmless: the second finds nothing to claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from ledger.budgets import release_expired
from ledger.cache import purge_expired
from ledger.db import session_scope, with_db_retry
from ledger.lifecycle import queued_items_older_than, requeue_stale_running
from ledger.models import Item, ItemState
from routing.settings import get_settings
from worker.broker_state import live_item_ids
from worker.publish import publish_items

log = logging.getLogger("batchrouter.reconcile")


@dataclass
class ReconcileResult:
    requeued_stale: int = 0  # claimed by a worker that never reported
    republished: dict[str, int] = field(default_factory=dict)  # tier -> items put back
    broker_checked: bool = False  # whether live messages could be listed
    cache_purged: int = 0  # expired response-cache entries deleted
    reservations_released: int = 0  # budget holds of dead workers, counted as spent


def reconcile(
    running_timeout_s: float | None = None, queued_grace_s: float = 30.0
) -> ReconcileResult:
    settings = get_settings()
    running_timeout_s = running_timeout_s or float(settings.visibility_timeout)
    result = ReconcileResult()

    def repair() -> tuple[dict[str, list[int]], dict[str, list[int]], list[str]]:
        with session_scope() as session:
            stale = requeue_stale_running(session, running_timeout_s)
            waiting = queued_items_older_than(session, queued_grace_s)
            tiers = list(
                session.scalars(
                    select(Item.tier).where(Item.state == ItemState.QUEUED.value).distinct()
                )
            )
        return stale, waiting, tiers

    stale, waiting, tiers = with_db_retry(repair, what="reconcile")

    def purge() -> tuple[int, int]:
        with session_scope() as session:
            return purge_expired(session), release_expired(session)

    try:  # housekeeping: a failure here must not stop the repair below
        result.cache_purged, result.reservations_released = with_db_retry(purge, what="purge")
    except Exception:
        log.exception("reconcile: purging expired cache entries and reservations failed")
    result.requeued_stale = sum(len(ids) for ids in stale.values())
    live = live_item_ids(settings, tiers, unacked_max_age_s=running_timeout_s)
    result.broker_checked = live is not None
    for tier in set(stale) | set(waiting):
        ids = set(stale.get(tier, [])) | set(waiting.get(tier, []))
        if live is not None:
            ids -= live - set(stale.get(tier, []))  # a stale claim's old message is dead anyway
        if ids:
            publish_items(sorted(ids), tier, settings.chunk_size)
            result.republished[tier] = len(ids)
    if result.requeued_stale or result.republished:
        log.warning(
            "reconcile: %d stale claims requeued, republished %s",
            result.requeued_stale,
            result.republished,
        )
    return result
