"""The deferred-tier poller: staged items -> provider batches -> results -> the ledger.

One `poll_once` walks every open provider batch one step further. It runs as a beat task on the
control queue (`batchrouter.deferred_poll`) and as `batchrouter deferred poll`. One poll runs at
a time per ledger: each takes the `deferred_poll` lock (ledger/locks.py, a lease renewed between
steps), and a poll that finds it held returns at once, saying who holds it. Each step is also a
compare-and-set on the provider batch's state, so a poll that outlived its lease still cannot
send a batch twice.

Crash points, and why none loses or doubles an item:
- killed after the file upload, before recording its id: the file is orphaned (harmless) and
  uploaded again;
- killed after `create` reached the provider, before recording the provider's id: the row stays
  `submitting`; once it is `submit_grace_s` old the next poll asks the provider for a batch
  carrying our marker (BatchClient.find) and adopts it instead of creating a second one;
- killed after downloading results, before or during writing them: nothing was committed (one
  transaction per provider batch), so the next poll downloads and writes them again; items
  already settled are skipped (ledger/provider_batches.settle_items);
- killed after the commit, before publishing escalated items: they are queued in the ledger and
  the reconciler republishes them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from ledger import provider_batches as ledger
from ledger.budgets import budget_applies, settle
from ledger.db import session_scope, with_db_retry
from ledger.lifecycle import pause_batch
from ledger.locks import Lease, LeaseLost
from ledger.models import ItemState, ProviderBatch, ProviderBatchState, utcnow
from ledger.outcomes import ClaimedItem
from ledger.transitions import outcome_without_call
from providers.batch_api import (
    BatchClient,
    BatchStatus,
    BatchStillUnknown,
    get_batch_client,
)
from routing.config import RoutingConfig
from routing.settings import get_settings
from routing.tiers import BatchOptions
from routing.types import ErrorClass, ProviderError
from worker import loop
from worker.callbacks import notify_batch_finished
from worker.deferred.ingest import outcomes_from_results
from worker.deferred.requests import batch_request, deferred_deployment
from worker.pipeline import batch_configs, call_facts, refusal
from worker.publish import publish_items
from worker.savings import premium_equivalent_usd

log = logging.getLogger("batchrouter.deferred")

State = ProviderBatchState
POLL_LOCK = "deferred_poll"


@dataclass
class PollSummary:
    formed: int = 0  # provider batches made from staged items
    submitted: int = 0
    ended: int = 0
    ingested: int = 0
    settled: dict[str, int] = field(default_factory=dict)  # items by their next state
    sent_back: int = 0  # items of expired or cancelled provider batches, back on their queue
    open: int = 0  # provider batches still waiting on the provider after this poll
    staged: int = 0  # items staged and not yet in a provider batch
    unfinished: int = 0  # running batches that used a deferred tier and have not finished
    errors: list[str] = field(default_factory=list)
    # for metrics (worker/metrics.py): the ingested calls, and items settled by tier and state
    calls: list[dict] = field(default_factory=list)
    items_by_tier: dict[str, dict[str, int]] = field(default_factory=dict)
    premium_usd: dict[str, float] = field(default_factory=dict)  # tier -> worker/savings.py
    # Set when another poll held the lock: this one did nothing (and its counts are not news).
    locked_by: str | None = None

    def counts(self) -> dict:
        """What the beat task returns (Flower shows it): counts, no per-call facts and no
        error texts (a provider's message is logged and kept on the provider batch row)."""
        return {
            "formed": self.formed,
            "submitted": self.submitted,
            "ended": self.ended,
            "ingested": self.ingested,
            "settled": dict(self.settled),
            "sent_back": self.sent_back,
            "open": self.open,
            "staged": self.staged,
            "unfinished": self.unfinished,
            "errors": len(self.errors),
        }


def poll_once(*, force: bool = False, submit_grace_s: float | None = None) -> PollSummary:
    """One step for everything: form, submit, poll, ingest. `force` forms provider batches
    from staged items now instead of waiting for the tier's `collect_s`. Returns at once,
    with `locked_by` set, when another poll holds the lock."""
    settings = get_settings()
    grace = settings.deferred_submit_grace_s if submit_grace_s is None else submit_grace_s
    summary = PollSummary()
    lease = Lease(POLL_LOCK, settings.deferred_poll_lease_s)
    if not lease.acquire():
        held = lease.held_by
        summary.locked_by = (
            f"{held.holder} until {held.expires_at:%H:%M:%S} UTC" if held else "another poll"
        )
        log.info("deferred poll: skipped, another poll holds the lock (%s)", summary.locked_by)
        return summary
    try:
        _poll(summary, force, grace, lease)
    except LeaseLost as lost:  # ran past its lease and another poll took over: stop here
        summary.errors.append(str(lost))
    finally:
        lease.release()
    return summary


def _poll(summary: PollSummary, force: bool, grace: float, lease: Lease) -> None:
    _form(summary, force, lease)
    with session_scope(readonly=True) as session:
        open_batches = ledger.open_provider_batches(session)
    for pb in open_batches:
        lease.renew()
        try:
            _advance(pb, summary, grace)
        except ProviderError as error:
            # The provider's batch endpoints failed (5xx, 429, network): try again next poll.
            summary.errors.append(f"{pb.id[:8]} {pb.state}: {error.message}")
            with session_scope() as session:
                ledger.note(session, pb.id, error=error.message[:2000])
    with session_scope(readonly=True) as session:
        summary.open = len(ledger.open_provider_batches(session))
        summary.staged = sum(group.count for group in ledger.staged_groups(session))
        summary.unfinished = ledger.unfinished_deferred_batches(session)
    if summary.formed or summary.submitted or summary.ingested or summary.errors:
        log.info(
            "deferred poll: %d formed, %d submitted, %d ended, %d ingested %s, %d sent back, "
            "%d open, %d staged%s",
            summary.formed, summary.submitted, summary.ended, summary.ingested, summary.settled,
            summary.sent_back, summary.open, summary.staged,
            f"; errors: {summary.errors}" if summary.errors else "",
        )  # fmt: skip


def _form(summary: PollSummary, force: bool, lease: Lease) -> None:
    """Staged items become provider batches once the oldest has waited `collect_s` (or a
    batch's worth is staged), split by the tier's request and byte limits."""
    now = utcnow()
    with session_scope(readonly=True) as session:
        groups = ledger.staged_groups(session)
        configs = batch_configs(session, {group.batch_id for group in groups})
    for group in groups:
        lease.renew()
        if group.batch_id not in configs:
            _hold_refused(group.batch_id, summary)
            continue
        task_name, config = configs[group.batch_id]
        options = config.tier(group.tier).batch
        due = group.oldest <= now - timedelta(seconds=options.collect_s)
        if not (force or due or group.count >= options.max_requests):
            continue
        name = deferred_deployment(config, group.tier)
        client = get_batch_client(config.deployments[name].provider)
        try:
            summary.formed += _form_group(group, config, task_name, name, client, options)
        except ledger.StagedItemsTaken as taken:  # rolled back: nothing formed, no phantom
            summary.errors.append(f"{group.batch_id[:8]} {group.tier}: {taken}")


def _form_group(
    group: ledger.StagedGroup,
    config: RoutingConfig,
    task_name: str,
    name: str,
    client: BatchClient,
    options: BatchOptions,
) -> int:
    """One group's provider batches, in one transaction; how many were formed (counted once
    committed). A write transaction from its first read: on SQLite it holds the write lock
    while it reads the staged items, which FOR UPDATE SKIP LOCKED does on PostgreSQL."""
    deployment = config.deployments[name]
    formed = 0
    with session_scope() as session:
        if not ledger.batch_is_live(session, group.batch_id):
            return 0  # paused: its items stay staged until it is resumed
        items = ledger.staged_items(session, group.batch_id, group.tier)
        # The marker is not chosen yet; a placeholder of the same length sizes each line.
        sizes = [
            len(client.encode(batch_request("0" * 32, item, config, task_name, name), deployment))
            for item in items
        ]
        for ids, size in _split(items, sizes, options.max_requests, options.max_bytes):
            ledger.create_provider_batch(
                session, batch_id=group.batch_id, tier=group.tier, deployment=name,
                provider=deployment.provider, model=deployment.model, item_ids=ids,
                request_bytes=size,
            )  # fmt: skip
            formed += 1
    return formed


def _hold_refused(batch_id: str, summary: PollSummary) -> None:
    """A batch whose stored routing file this host refuses is paused with the reason (status
    shows it); its deferred items wait, untouched, until it is resumed on a host that allows
    the file, or cancelled."""
    reason = f"this host refuses the batch's stored routing file: {refusal(batch_id)}"
    with session_scope() as session:
        if pause_batch(session, batch_id, reason[:2000]):
            log.error("batch %s paused: %s", batch_id, reason)
    summary.errors.append(f"batch {batch_id[:8]}: routing file refused")


def _split(
    items: list[ClaimedItem], sizes: list[int], max_requests: int, max_bytes: int
) -> list[tuple[list[int], int]]:
    """Consecutive runs of items within both limits: (item ids, their bytes)."""
    runs: list[tuple[list[int], int]] = []
    ids: list[int] = []
    total = 0
    for item, size in zip(items, sizes, strict=True):
        if ids and (len(ids) >= max_requests or total + size > max_bytes):
            runs.append((ids, total))
            ids, total = [], 0
        ids.append(item.id)
        total += size
    if ids:
        runs.append((ids, total))
    return runs


def _advance(pb: ProviderBatch, summary: PollSummary, grace: float) -> None:
    with session_scope(readonly=True) as session:
        configs = batch_configs(session, {pb.batch_id})
    if pb.batch_id not in configs:
        _hold_refused(pb.batch_id, summary)
        return
    task_name, config = configs[pb.batch_id]
    deployment = config.deployments[pb.deployment]
    client = get_batch_client(pb.provider)
    if pb.state in (State.PREPARED.value, State.SUBMITTING.value):
        if _submit(pb, client, config, task_name, grace):
            summary.submitted += 1
        return
    if pb.state == State.SUBMITTED.value:
        status = loop.run(client.status(deployment, pb.provider_id or ""))
        with session_scope() as session:
            if not status.ended:
                ledger.note(session, pb.id, provider_status=status.status)
                return
            ended = ledger.move(
                session, pb.id, State.SUBMITTED.value, State.ENDED.value,
                provider_status=status.status, ended_at=utcnow(), error=status.failed_reason,
            )  # fmt: skip
        if not ended:
            return
        summary.ended += 1
        _ingest(pb, client, config, task_name, summary, status)
    elif pb.state == State.ENDED.value:  # ended by an earlier poll that stopped before ingesting
        _ingest(pb, client, config, task_name, summary)


def _submit(
    pb: ProviderBatch, client: BatchClient, config: RoutingConfig, task_name: str, grace: float
) -> bool:
    deployment = config.deployments[pb.deployment]
    if pb.state == State.SUBMITTING.value:
        # An earlier create may have reached the provider: look for it before sending again.
        with session_scope() as session:
            mine = ledger.move(
                session, pb.id, State.SUBMITTING.value, State.SUBMITTING.value,
                stale_before=ledger.stale_cutoff(grace),
            )  # fmt: skip
        if not mine:
            return False  # another poller is submitting it right now (or did moments ago)
        since = pb.submitted_at or pb.created_at
        try:
            found = loop.run(client.find(deployment, pb.id, since, pb.request_count))
        except BatchStillUnknown:
            return False
        if found is not None:
            with session_scope() as session:
                ledger.move(
                    session, pb.id, State.SUBMITTING.value, State.SUBMITTED.value,
                    provider_id=found, error=None,
                )  # fmt: skip
            log.info("provider batch %s: adopted %s found after a crash", pb.id[:8], found)
            return True
    with session_scope(readonly=True) as session:
        items = ledger.items_of(session, pb.id)
    if not items:  # every item left (its batch was cancelled): nothing to send
        with session_scope() as session:
            ledger.move(session, pb.id, pb.state, State.INGESTED.value, ingested_at=utcnow())
        return False
    requests = [batch_request(pb.id, item, config, task_name, pb.deployment) for item in items]
    try:
        file_id = pb.input_file_id
        if file_id is None:
            file_id = loop.run(client.prepare(requests, deployment, pb.id))
            if file_id is not None:
                with session_scope() as session:
                    ledger.note(session, pb.id, input_file_id=file_id)
        with session_scope() as session:
            if not ledger.move(
                session, pb.id, pb.state, State.SUBMITTING.value, submitted_at=utcnow()
            ):
                return False
        provider_id = loop.run(client.create(requests, deployment, pb.id, file_id))
    except ProviderError as error:
        _submit_failed(pb, items, error)
        return False
    with session_scope() as session:
        ledger.move(
            session, pb.id, State.SUBMITTING.value, State.SUBMITTED.value,
            provider_id=provider_id, error=None,
        )  # fmt: skip
    log.info("provider batch %s: %d requests submitted as %s", pb.id[:8], len(items), provider_id)
    return True


def _submit_failed(pb: ProviderBatch, items: list[ClaimedItem], error: ProviderError) -> None:
    """The provider answered the upload or create with an error: nothing was created. A
    permanent error (the request itself is wrong) fails the items with its message; anything
    else leaves the batch `prepared` for the next poll."""
    with session_scope() as session:
        ledger.note(session, pb.id, error=error.message[:2000])
        if error.status_code is not None:  # answered: not created, may be sent again
            ledger.move(session, pb.id, State.SUBMITTING.value, State.PREPARED.value)
    if error.status_code is None or error.error_class is not ErrorClass.PERMANENT:
        # No answer (timeout, dropped): it may exist, and `submitting` makes the next poll
        # look for it. A passing failure: the next poll sends it again.
        raise error
    with session_scope() as session:
        reason = f"provider batch refused: {error.message}"[:2000]
        outcomes = [outcome_without_call(item, ItemState.FAILED.value, reason) for item in items]
        _, finished = ledger.settle_items(session, pb.id, outcomes)
        ledger.move(
            session, pb.id, State.PREPARED.value, State.INGESTED.value, ingested_at=utcnow()
        )
    for batch_id in finished:
        notify_batch_finished(batch_id)


def _ingest(
    pb: ProviderBatch,
    client: BatchClient,
    config: RoutingConfig,
    task_name: str,
    summary: PollSummary,
    status: BatchStatus | None = None,
) -> None:
    deployment = config.deployments[pb.deployment]
    if status is None:
        status = loop.run(client.status(deployment, pb.provider_id or ""))
    results = loop.run(client.results(deployment, status)) if not status.failed_reason else []
    with session_scope(readonly=True) as session:
        items = ledger.items_of(session, pb.id)
    outcomes = loop.run(outcomes_from_results(pb, items, results, status, config, task_name))

    def write() -> tuple[list, list[str]]:  # type: ignore[type-arg]
        with session_scope() as session:
            written, finished = ledger.settle_items(session, pb.id, outcomes)
            spent: dict[str, float] = defaultdict(float)
            for outcome in written:
                spent[outcome.batch_id] += sum(a.cost_usd for a in outcome.attempts)
            for batch_id, amount in spent.items():
                if amount and budget_applies(session, batch_id):
                    settle(session, batch_id, 0.0, amount)
            ledger.move(
                session, pb.id, State.ENDED.value, State.INGESTED.value, ingested_at=utcnow()
            )
            return written, finished

    written, finished = with_db_retry(write, what="ingest")
    summary.ingested += 1
    requeue: dict[str, list[int]] = defaultdict(list)
    by_state = summary.items_by_tier.setdefault(pb.tier, {})
    for outcome in written:
        summary.settled[outcome.next_state] = summary.settled.get(outcome.next_state, 0) + 1
        by_state[outcome.next_state] = by_state.get(outcome.next_state, 0) + 1
        summary.calls.extend(call_facts(a) for a in outcome.attempts)
        premium = premium_equivalent_usd(outcome, config, task_name)
        summary.premium_usd[pb.tier] = summary.premium_usd.get(pb.tier, 0.0) + premium
        if outcome.next_state == ItemState.QUEUED.value and not outcome.parked:
            requeue[outcome.next_tier].append(outcome.item_id)
            if outcome.next_tier == pb.tier and not outcome.attempts:
                summary.sent_back += 1
    chunk_size = get_settings().chunk_size
    for tier, ids in requeue.items():
        publish_items(ids, tier, chunk_size)
    for batch_id in finished:
        notify_batch_finished(batch_id)
    log.info(
        "provider batch %s (%s) ingested: %d items %s",
        pb.id[:8], status.status, len(written), summary.settled,
    )  # fmt: skip
