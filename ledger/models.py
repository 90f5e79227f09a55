"""The ledger's tables: batches, items and attempts. The ledger is the system of record.

An item's text, outputs and costs live here; broker messages carry only item ids. Every provider
call is one `attempts` row, unique on (item_id, attempt_no), so a redelivered message cannot add
a second row for the same call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false as sa_false

from ledger.money_sql import Money

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ItemState(StrEnum):
    QUEUED = "queued"  # waiting on its tier's queue
    RUNNING = "running"  # claimed by a worker
    SUCCEEDED = "succeeded"  # an output passed every check
    FAILED = "failed"  # last tier failed, attempts exhausted, or a permanent error
    CANCELLED = "cancelled"  # its batch was cancelled while it waited
    # Not terminal, and no broker message carries them:
    WAITING = "waiting"  # a duplicate of an earlier item of its batch; settles when that one does
    DEFERRED = "deferred"  # handed to a provider batch API (worker/deferred/); the poller owns it


TERMINAL_STATES = (ItemState.SUCCEEDED.value, ItemState.FAILED.value, ItemState.CANCELLED.value)


class BatchState(StrEnum):
    RUNNING = "running"  # workers take its items
    PAUSED = "paused"  # workers leave its queued items alone until it is resumed
    CANCELLED = "cancelled"  # queued items were dropped; running ones finished


class Base(DeclarativeBase):
    pass


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        # report filters (--project, --type) select batches first (migration 0002)
        Index("ix_batches_project", "project"),
        Index("ix_batches_task_type", "task_type"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(String(100))
    project: Mapped[str | None] = mapped_column(String(100))
    config_yaml: Mapped[str] = mapped_column(Text)  # the routing file as used by this batch
    config_source: Mapped[str] = mapped_column(String(500))
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)  # items in a terminal state
    state: Mapped[str] = mapped_column(
        String(16), default=BatchState.RUNNING.value, server_default=BatchState.RUNNING.value
    )
    paused_reason: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(String(1000))  # POSTed when the batch ends
    callback_task: Mapped[str | None] = mapped_column(String(200))  # or a Celery task to send
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Spend control (ledger/budgets.py): a call reserves its estimate before it runs and is
    # settled to its real cost after, so spent + reserved never passes the budget.
    budget_usd: Mapped[Decimal | None] = mapped_column(Money)  # None: unlimited
    reserved_usd: Mapped[Decimal] = mapped_column(Money, default=0.0, server_default="0")
    spent_usd: Mapped[Decimal] = mapped_column(Money, default=0.0, server_default="0")


class ProjectBudget(Base):
    """A budget shared by every batch with this project tag (no row: unlimited)."""

    __tablename__ = "project_budgets"

    project: Mapped[str] = mapped_column(String(100), primary_key=True)
    budget_usd: Mapped[Decimal | None] = mapped_column(Money)  # None: unlimited, spend tracked
    reserved_usd: Mapped[Decimal] = mapped_column(Money, default=0.0, server_default="0")
    spent_usd: Mapped[Decimal] = mapped_column(Money, default=0.0, server_default="0")


class BudgetReservation(Base):
    """What one call in flight holds on its batch's (and project's) budget, until its lease
    ends. A worker that dies between reserve and settle leaves its row behind: once the lease
    is over, the reconciler (or the next reservation refused for want of room) releases it, its
    amount counted as spent because the call may have been billed (ledger/budgets.py)."""

    __tablename__ = "budget_reservations"
    __table_args__ = (
        Index("ix_budget_reservations_batch", "batch_id"),
        Index("ix_budget_reservations_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32))
    project: Mapped[str | None] = mapped_column(String(100))  # set when the project was charged
    amount_usd: Mapped[Decimal] = mapped_column(Money)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("batch_id", "external_id", name="uq_items_batch_external"),
        # `status` counts by (state, tier) from this index alone (an index-only scan on
        # PostgreSQL); lookups by (batch_id, state) use its prefix.
        Index("ix_items_batch_state_tier", "batch_id", "state", "tier"),
        Index("ix_items_state_updated", "state", "updated_at"),  # the reconciler's scan
        Index("ix_items_duplicate_of", "duplicate_of"),
        Index("ix_items_provider_batch", "provider_batch_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))  # the producer's id: the join key
    line_no: Mapped[int] = mapped_column(Integer)  # where it came from in the input file
    text: Mapped[str] = mapped_column(Text)
    expected: Mapped[str | None] = mapped_column(Text)  # gold answer, when the producer had one
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # other input columns
    state: Mapped[str] = mapped_column(String(16), default=ItemState.QUEUED.value)
    tier: Mapped[str] = mapped_column(String(100))  # the tier it is queued on or was settled by
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # provider calls made so far
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=0.0)  # sum over its attempts
    output: Mapped[str | None] = mapped_column(Text)  # accepted output, or best failed one
    deployment: Mapped[str | None] = mapped_column(String(200))  # that produced `output`
    model: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, or the last check reason
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The broker message (task id) that holds the claim, and how many times the item was
    # claimed: a redelivery of the same message may take its claim back, and an item whose
    # claims keep dying with their worker is failed instead of looping forever.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # see retry
    # In-batch deduplication (ledger/dedup.py): an item whose text and fields equal an earlier
    # item's waits for that item (`duplicate_of`, the leader) instead of being called; the
    # leader counts how many wait for it so the worker looks for followers only when needed.
    duplicate_of: Mapped[int | None] = mapped_column(Id)
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Deferred tiers: the provider batch (provider_batches.id) holding the item, NULL while the
    # item is staged and waits for the poller to put it into one.
    provider_batch_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The worker process whose lease (worker_leases) holds the claim of a running item: when
    # that lease lapses the reconciler re-queues the item (ledger/leases.py).
    lease_holder: Mapped[str | None] = mapped_column(String(200))


class WorkerLease(Base):
    """One worker process's lease on the items it claims (ledger/leases.py): its heartbeat
    renews it; once `expires_at` has passed, the process counts as dead or cut off."""

    __tablename__ = "worker_leases"

    holder: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:nonce
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    renewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("item_id", "attempt_no", name="uq_attempts_item_no"),
        Index("ix_attempts_batch", "batch_id"),
        # report queries (migration 0002): date ranges, and a batch's failures by outcome
        Index("ix_attempts_created_at", "created_at"),
        Index("ix_attempts_batch_outcome", "batch_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(String(32))  # denormalised for report queries
    attempt_no: Mapped[int] = mapped_column(Integer)  # 1, 2, ... across all tiers
    tier: Mapped[str] = mapped_column(String(100))
    deployment: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=0.0)
    prices: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the prices used
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)  # sent -> response
    # Time the call spent in the worker besides: rate limits, pool waits, a busy event loop.
    queued_ms: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(20))  # passed | check_failed | error
    verdicts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error_class: Mapped[str | None] = mapped_column(String(30))
    error_message: Mapped[str | None] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Cost levers (migration 0005). A cache hit (response cache or an in-batch duplicate served
    # by its leader) costs 0 and records in `saved_usd` what the call it reused cost. A deferred
    # call (provider batch API) names its provider batch and records in `saved_usd` what the
    # same tokens cost at the deployment's immediate prices minus what they cost in the batch.
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # The claim of its item under which the call was made (its intent's), NULL before
    # migration 0010: a late writer whose claim was taken over changes only its own rows.
    claim_no: Mapped[int | None] = mapped_column(Integer)
    provider_batch_id: Mapped[str | None] = mapped_column(String(32))
    saved_usd: Mapped[Decimal] = mapped_column(Money, default=0.0, server_default="0")


class ProviderBatchState(StrEnum):
    PREPARED = "prepared"  # items assigned in the ledger; nothing sent yet
    SUBMITTING = "submitting"  # a create call may have reached the provider: look before resending
    SUBMITTED = "submitted"  # the provider's batch id is recorded; polled until it ends
    ENDED = "ended"  # the provider finished (completed, expired, cancelled or failed)
    INGESTED = "ingested"  # every item was settled, escalated or sent back to its queue


class ProviderBatch(Base):
    """One batch on a provider's batch API (OpenAI Batch API, Anthropic Message Batches).

    Our id is chosen before anything is sent and is part of every request's custom_id, so a
    poller that dies between the provider's answer and our commit can find the batch again.
    """

    __tablename__ = "provider_batches"
    __table_args__ = (Index("ix_provider_batches_state", "state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    tier: Mapped[str] = mapped_column(String(100))
    deployment: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=ProviderBatchState.PREPARED.value)
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    request_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    input_file_id: Mapped[str | None] = mapped_column(String(200))  # OpenAI: the uploaded JSONL
    provider_id: Mapped[str | None] = mapped_column(String(200))  # the provider's batch id
    provider_status: Mapped[str | None] = mapped_column(String(40))  # as the provider says it
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ingested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CachedResponse(Base):
    """The response cache (ledger/cache.py): an output that passed its checks, keyed by the
    SHA-256 of namespace, deployment and the fully rendered request. Only the hash of the
    request is stored, never the prompt."""

    __tablename__ = "response_cache"
    __table_args__ = (Index("ix_response_cache_expires", "expires_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(100))
    deployment: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    output: Mapped[str] = mapped_column(Text)
    token_logprobs: Mapped[list[float] | None] = mapped_column(JSON)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=0.0)  # what the original call cost
    # The original call's usage (ledger.cache.USAGE_KEYS), so a hit reports the tokens that call
    # used, not an estimate (migration 0009; None for entries cached before it).
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source_attempt: Mapped[str | None] = mapped_column(String(80))  # "<batch id>/<item>/<no>"
    hits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerLock(Base):
    """A named lock with a lease (ledger/locks.py), held by at most one process at a time
    across every host sharing the ledger: one deferred poller per ledger. A holder that dies
    stops renewing, and its lease runs out."""

    __tablename__ = "ledger_locks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))  # host:pid:nonce; None: released
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
