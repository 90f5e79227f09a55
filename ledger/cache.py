"""The response cache: the answers calls gave, reused by later identical requests.

It lives in the ledger (`response_cache`), not in Redis: it survives a broker flush, output
text never enters the broker's Redis (the security tests watch it), a worker reads the entries
for a whole chunk in one SELECT, and an entry is written in the same transaction as the passed
attempt that earned it, so the cache never names a call the ledger does not have.

The key is the SHA-256 of a canonical JSON of the namespace, the deployment and everything that
decides the answer: model, rendered messages, output cap, temperature, JSON schema, logprobs.
`request.meta` (item ids, the attempt number) is left out: two items asking the same thing share
an entry. Only the hash is stored, never the prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session

from ledger.models import CachedResponse, utcnow
from ledger.money import money
from ledger.money_sql import money_sum
from ledger.outcomes import USAGE_KEYS
from ledger.upserts import upsert
from routing.types import CompletionRequest

if TYPE_CHECKING:
    from ledger.outcomes import AttemptRecord, ItemOutcome


def usage_of(record: AttemptRecord) -> dict[str, Any]:
    """What an entry keeps of the call that earned it, so a hit records that call's usage."""
    return {key: getattr(record, key) for key in USAGE_KEYS}


ANSWERED = ("passed", "check_failed", "sample")  # attempt outcomes that carry an answer


@dataclass(frozen=True)
class CachedAnswer:
    key: str
    deployment: str
    model: str
    output: str
    token_logprobs: list[float] | None
    cost_usd: Decimal  # what the call that produced it cost: a hit saves that much
    usage: dict[str, Any] | None = None  # that call's usage (USAGE_KEYS); None: cached before 0009


@dataclass(frozen=True)
class CacheEntry:
    key: str
    namespace: str
    deployment: str
    model: str
    output: str
    token_logprobs: list[float] | None
    cost_usd: Decimal | float
    source_attempt: str  # "<batch id>/<item id>/<attempt no>"
    ttl_s: float
    usage: dict[str, Any] | None = None


@dataclass(frozen=True)
class CacheStats:
    entries: int
    live: int  # not yet expired
    expired: int
    hits: int  # times an entry was served
    saved_usd: Decimal  # what those hits would have cost (entries' cost x hits)
    by_namespace: dict[str, int]


def request_key(namespace: str, deployment_name: str, request: CompletionRequest) -> str:
    # A consensus's extra samples of one deployment are different answers, each its own entry;
    # the first answer's key leaves the sample out, so entries stored before samples were
    # keyed stay valid.
    sample = {"sample": request.meta.sample} if request.meta.sample else {}
    canonical = json.dumps(
        {
            **sample,
            "namespace": namespace,
            "deployment": deployment_name,
            "model": request.model,
            "messages": [[m.role, m.content] for m in request.messages],
            "max_output_tokens": request.max_output_tokens,
            "temperature": request.temperature,
            "json_schema": request.json_schema,
            "logprobs": request.logprobs,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_CACHE = cast(Table, CachedResponse.__table__)
# Built once: a claim runs it for every chunk (see ledger/upserts.py on statements built anew).
_LOOKUP = select(
    _CACHE.c.key, _CACHE.c.deployment, _CACHE.c.model, _CACHE.c.output,
    _CACHE.c.token_logprobs, _CACHE.c.cost_usd, _CACHE.c.usage,
).where(
    _CACHE.c.key.in_(bindparam("l_keys", expanding=True)),
    _CACHE.c.expires_at > bindparam("l_now"),
)  # fmt: skip


_COUNT_HITS = (
    update(_CACHE)
    .where(_CACHE.c.key == bindparam("h_key"))
    .values(hits=_CACHE.c.hits + bindparam("h_count"))
)


def lookup(session: Session, keys: Iterable[str]) -> dict[str, CachedAnswer]:
    """The unexpired entries among `keys`, in one query."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = session.execute(_LOOKUP, {"l_keys": wanted, "l_now": utcnow()}).all()
    return {
        row.key: CachedAnswer(
            key=row.key,
            deployment=row.deployment,
            model=row.model,
            output=row.output,
            token_logprobs=list(row.token_logprobs) if row.token_logprobs else None,
            cost_usd=money(row.cost_usd),
            usage=dict(row.usage) if row.usage else None,
        )
        for row in rows
    }


def store(session: Session, entries: Sequence[CacheEntry]) -> int:
    """Insert or refresh `entries` in one statement; return how many were given.

    An upsert, so two workers storing the same key (the same request answered twice before
    either committed) do not fail: the later one refreshes output and expiry. Keys go in sorted
    order so two PostgreSQL transactions lock them in the same order (no deadlock).
    """
    by_key = {entry.key: entry for entry in entries}  # one row per key per statement
    if not by_key:
        return 0
    now = utcnow()
    rows = [
        {
            "key": e.key,
            "namespace": e.namespace[:100],
            "deployment": e.deployment,
            "model": e.model,
            "output": e.output,
            "token_logprobs": e.token_logprobs,
            "cost_usd": money(e.cost_usd),
            "usage": e.usage,
            "source_attempt": e.source_attempt[:80],
            "hits": 0,
            "created_at": now,
            "expires_at": now + timedelta(seconds=e.ttl_s),
        }
        for e in sorted(by_key.values(), key=lambda e: e.key)
    ]
    upsert(session, CachedResponse, ("key",), _REFRESHED, rows)
    return len(rows)


# What a second store of a key refreshes (the later answer wins).
_REFRESHED = (
    "deployment", "model", "output", "token_logprobs", "cost_usd", "usage",
    "source_attempt", "created_at", "expires_at",
)  # fmt: skip


def count_hits(session: Session, keys: Sequence[str]) -> None:
    """Add one hit per occurrence of a key (one executemany; sorted for lock order)."""
    if not keys:
        return
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    session.execute(_COUNT_HITS, [{"h_key": key, "h_count": counts[key]} for key in sorted(counts)])


def purge_expired(session: Session) -> int:
    result = session.execute(delete(CachedResponse).where(CachedResponse.expires_at <= utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def stats(session: Session) -> CacheStats:
    now = utcnow()
    entries, live, hits, saved = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((CachedResponse.expires_at > now, 1), else_=0)), 0),
            func.coalesce(func.sum(CachedResponse.hits), 0),
            money_sum(CachedResponse.hits * CachedResponse.cost_usd),
        )
    ).one()
    by_namespace = {
        namespace: count
        for namespace, count in session.execute(
            select(CachedResponse.namespace, func.count())
            .group_by(CachedResponse.namespace)
            .order_by(CachedResponse.namespace)
        )
    }
    return CacheStats(
        entries=int(entries),
        live=int(live),
        expired=int(entries) - int(live),
        hits=int(hits),
        saved_usd=money(saved),
        by_namespace=by_namespace,
    )


def entries_for(outcomes: Sequence[ItemOutcome]) -> list[CacheEntry]:
    """The cache entries earned by these outcomes: every answer a call gave (whatever its
    verdict: an answer is a fact about the request, judged again by whoever reuses it), not a
    hit, of a task with the cache on. The deferred-ingestion path calls this too (then
    `store`), in the transaction that records its attempts."""
    entries = []
    for outcome in outcomes:
        policy = outcome.cache
        if policy is None:
            continue
        for record in outcome.attempts:
            answer = record.answer if record.answer is not None else record.output
            if (
                record.outcome not in ANSWERED
                or record.error_class is not None
                or record.cache_hit
                or record.cache_key is None
                or answer is None
            ):
                continue
            entries.append(
                CacheEntry(
                    key=record.cache_key,
                    namespace=policy.namespace,
                    deployment=record.deployment,
                    model=record.model,
                    output=answer,
                    token_logprobs=record.token_logprobs,
                    cost_usd=record.cost_usd,
                    source_attempt=f"{outcome.batch_id}/{outcome.item_id}/{record.attempt_no}",
                    ttl_s=policy.ttl_s,
                    usage=usage_of(record),
                )
            )
    return entries


def record_cache_writes(session: Session, outcomes: Sequence[ItemOutcome]) -> None:
    """Store what the outcomes earned and count the hits they used, in the caller's
    transaction (transitions.record_outcomes, or the deferred ingestion)."""
    store(session, entries_for(outcomes))
    count_hits(
        session,
        [
            record.cache_key
            for outcome in outcomes
            for record in outcome.attempts
            if record.cache_hit and record.cache_key is not None
        ],
    )
