"""The `replay` provider: serves recorded outcomes, so a batch can be re-run with no API spend.

A deployment `provider: replay` names its table with `replay_file:` (format in
routing/replay_table.py and docs/replay-and-evaluation.md). A request is answered
with the row for (the item's producer id, the deployment's model); a missing row is a permanent
error, so the item falls back or fails exactly as with a live provider. Each table is read once
per process.
"""

from __future__ import annotations

import threading
from pathlib import Path

from routing.deployments import Deployment
from routing.replay_table import (
    ReplayRow,
    ReplayTable,
    ReplayTableError,
    read_replay_table,
)
from routing.tokens import count_message_tokens, count_text_tokens
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    ProviderError,
    Usage,
)

_lock = threading.Lock()
_tables: dict[str, ReplayTable] = {}


def load_table(path: str | Path) -> ReplayTable:
    """The table at `path`, read on first use and kept for the life of the process."""
    table = _tables.get(str(path))  # the spelling seen before: no filesystem call per request
    if table is not None:
        return table
    key = str(Path(path).resolve())
    with _lock:
        table = _tables.get(key)
        if table is None:
            table = read_replay_table(path)
            _tables[key] = table
        _tables[str(path)] = table
    return table


def clear_cache() -> None:
    with _lock:
        _tables.clear()


class ReplayProvider:
    """Needs no network and no key; answers at once with what was recorded."""

    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        if not deployment.replay_file:
            raise ProviderError(
                ErrorClass.PERMANENT,
                f"deployment {request.deployment!r} uses the replay provider but has no replay_file",
            )
        try:
            table = load_table(deployment.replay_file)
        except ReplayTableError as exc:
            raise ProviderError(ErrorClass.PERMANENT, str(exc)) from None
        item, model, sample = request.meta.item_key, deployment.model, request.meta.sample
        row = table.lookup(item, model) if not sample else _nth(table.samples(item, model), sample)
        if row is None:
            which = f" (answer {sample + 1}: a consensus sample)" if sample else ""
            raise ProviderError(
                ErrorClass.PERMANENT,
                f"no recorded outcome for item {item!r} on model {model!r}{which}",
            )
        usage = _usage(row, request)
        if row.error_class is not None:
            raise ProviderError(
                ErrorClass(row.error_class),
                row.error_message or f"recorded {row.error_class} error",
                billed_usage=usage if row.tokens or row.cost_usd else None,
                latency_ms=row.latency_ms,
            )
        return CompletionResult(
            text=row.text,
            usage=usage,
            latency_ms=row.latency_ms,
            request_id=f"replay:{Path(table.path).name}:{row.line_no}",
            token_logprobs=row.logprobs,
            raw_usage=dict(row.tokens or {}),
            cost_usd_override=row.cost_usd,
        )


def _nth(rows: list[ReplayRow], index: int) -> ReplayRow | None:
    return rows[index] if index < len(rows) else None


def _usage(row: ReplayRow, request: CompletionRequest) -> Usage:
    if row.tokens is not None:
        return Usage(**row.tokens)
    # Nothing recorded: count the prompt and the answer ourselves, and say so.
    return Usage(
        input_tokens=count_message_tokens(request.messages, request.model),
        output_tokens=count_text_tokens(row.text, request.model) if row.text else 0,
        estimated=True,
    )
