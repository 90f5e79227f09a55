"""Clients of the providers' batch APIs (OpenAI Batch API, Anthropic Message Batches): the
deferred tier, half price, results within 24 h. The poller drives one batch through
prepare -> create -> status (until ended) -> results, and calls `find` after a crash between
`create` reaching the provider and the poller recording its id.

Custom ids: every custom_id of a batch is `custom_id_for(marker, item_id, attempt_no)`, i.e.
"{marker}-{item_id}-{attempt_no}". Anthropic batches carry no metadata, so `find` recognises an
Anthropic batch by its custom_ids starting with "{marker}-".

All calls use the shared pooled httpx client and the deployment's api_base, key variable, extra
headers and query, exactly as the immediate adapters. HTTP failures of the batch endpoints raise
a classified ProviderError (retry the step later); the key never appears in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from routing.deployments import Deployment
from routing.types import CompletionRequest, CompletionResult, ProviderError

__all__ = [
    "MARKER_SEP",
    "BatchClient",
    "BatchRequest",
    "BatchResult",
    "BatchStatus",
    "BatchStillUnknown",
    "custom_id_for",
    "get_batch_client",
]

MARKER_SEP = "-"


def custom_id_for(marker: str, item_id: object, attempt_no: int) -> str:
    """The custom_id convention `find` relies on: "{marker}-{item_id}-{attempt_no}". Keep the
    whole id <= 64 chars of [A-Za-z0-9_-] (Anthropic's rule; OpenAI is laxer)."""
    return f"{marker}{MARKER_SEP}{item_id}{MARKER_SEP}{attempt_no}"


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str  # <=64 chars [A-Za-z0-9_-]; see custom_id_for
    request: CompletionRequest


@dataclass(frozen=True)
class BatchStatus:
    provider_id: str
    status: str  # the provider's own word (completed, expired, ended, ...)
    ended: bool  # no more results will come (completed/failed/expired/cancelled; Anthropic ended)
    failed_reason: str | None = None  # OpenAI `failed` batches: the errors joined
    counts: dict[str, int] = field(default_factory=dict)
    output_ref: str | None = None  # OpenAI output_file_id / Anthropic results_url
    error_ref: str | None = None  # OpenAI error_file_id


@dataclass(frozen=True)
class BatchResult:
    custom_id: str
    # None: not processed (expired, cancelled) and not billed: the item goes back to its queue.
    # ProviderError carries billed_usage when the provider bills it.
    outcome: CompletionResult | ProviderError | None


class BatchStillUnknown(Exception):
    """`find` cannot tell yet whether an earlier `create` made a batch (a candidate batch has
    not ended, so its custom_ids cannot be read): call `find` again later."""


class BatchClient(Protocol):
    def encode(self, item: BatchRequest, deployment: Deployment) -> bytes:
        """One request as sent (a JSONL line / one Anthropic request's JSON), for size limits."""
        ...

    async def prepare(
        self, items: list[BatchRequest], deployment: Deployment, marker: str
    ) -> str | None:
        """OpenAI: upload the JSONL input file, return its id. Anthropic: None."""
        ...

    async def create(
        self,
        items: list[BatchRequest],
        deployment: Deployment,
        marker: str,
        input_file_id: str | None,
    ) -> str:
        """Create the batch; the provider's batch id. OpenAI: metadata {"batchrouter_id": marker}."""
        ...

    async def find(
        self, deployment: Deployment, marker: str, since: datetime, request_count: int
    ) -> str | None:
        """The id of the batch an earlier `create` with `marker` made (created after `since`),
        None when certainly there is none; raises BatchStillUnknown when it cannot tell yet."""
        ...

    async def status(self, deployment: Deployment, provider_id: str) -> BatchStatus: ...

    async def results(self, deployment: Deployment, status: BatchStatus) -> list[BatchResult]:
        """One BatchResult per custom_id of an ended batch (any order); [] when none exist."""
        ...

    async def cancel(self, deployment: Deployment, provider_id: str) -> None: ...


def get_batch_client(provider: str) -> BatchClient:
    """The batch client for a deployment's `provider` ("openai" or "anthropic")."""
    if provider == "openai":
        from providers.batch_api.openai_batch import OpenAIBatchClient

        return OpenAIBatchClient()
    if provider == "anthropic":
        from providers.batch_api.anthropic_batch import AnthropicBatchClient

        return AnthropicBatchClient()
    raise ValueError(f"no batch API for provider {provider!r} (openai and anthropic have one)")
