"""Live deployment statistics shared by every worker: calls in flight, latency, cooldowns.

The middleware feeds the tier's selection strategy (routing/selection.py):
- `order` reads the tier's deployments' statistics in one Redis round trip (a read-only Lua
  script that also returns Redis's clock) and orders them by the tier's strategy;
- `before_call` adds the call to the deployment's in-flight set: a sorted set of call tokens
  scored by their expiry, so the calls of a worker that died without saying so drop out on
  their own after the longest a call can take;
- `after_call` removes it, folds the call's latency into an EWMA and counts consecutive
  failures (transient, rate limited, bad response); the Nth in a row (the tier's
  `cooldown_after_failures`) cools the deployment down for `cooldown_s`: every worker then
  tries it last until then. A success resets the count. One Lua script, Redis's clock.
- the same two scripts keep each deployment's circuit (worker/stats_store.py): transient
  failures in a row (the tier's `circuit_after_failures`) open it, and `before_call` then
  refuses calls to it (a `Denied` naming the circuit: no call, no attempt) until a single
  probe call finds it answering. worker/outage.py decides what a rung whose every deployment
  is down does with its items.

The state lives in the broker's Redis (BATCHROUTER_REDIS_URL overrides it). When the broker is
not Redis (the embedded demo on a filesystem broker) the statistics live in this process's
memory: correct for one worker process, not shared between several. Statistics are advice:
when Redis is unreachable the strategy runs on what it has and no call is held up.

The scripts that the calls of one event-loop tick issue travel to Redis together, as one
pipeline (worker/script_batch.py: each still atomic, each caller its own reply): at hundreds
of calls in flight, one round trip per call took 30% of a busy worker's event loop (issue 17).
The Redis pool still has a connection for every call the process may have in flight
(BATCHROUTER_MAX_IN_FLIGHT, plus a few; issue 19: a pool of 16 ran dry at 250 calls in
flight), opened only when needed. Every update that is skipped anyway (Redis down or slow)
is counted in `batchrouter_deployment_stats_skipped_total{op, reason}` and in
`DeploymentStats.skipped`.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid

from ledger.outcomes import AttemptRecord
from routing.config import RoutingConfig
from routing.policy import RETRYABLE
from routing.selection import order_deployments
from routing.types import CompletionResult, ErrorClass, ProviderError
from worker.middleware import CallContext, CircuitOpen, Denied, Middleware
from worker.stats_store import CircuitRule, Ended, MemoryStats, RedisStats, StatsStore

log = logging.getLogger("batchrouter.deployment_stats")
REDIS_RETRY_S = 5.0  # after a Redis error, leave it alone this long
__all__ = ["CircuitRule", "DeploymentStats", "MemoryStats", "RedisStats", "StatsStore"]


def stats_redis_url() -> str | None:
    """BATCHROUTER_REDIS_URL, else the broker's URL when the broker is Redis, else None."""
    from routing.settings import get_settings

    explicit = os.environ.get("BATCHROUTER_REDIS_URL")
    if explicit:
        return explicit
    broker = get_settings().resolved_broker_url()
    return broker if broker.startswith(("redis://", "rediss://", "unix://")) else None


def call_outcome(result: CompletionResult | ProviderError) -> str:
    """ok: the deployment answered (whatever the checks say); transient: connection refused,
    5xx, timeouts (a cooldown and the circuit count it); fail: a 429 or a broken body (the
    cooldown counts it; the server is up); other: an answer that says nothing about its
    health (a 400, a too-long prompt); none: no answer to judge it by (a bug on our side)."""
    if isinstance(result, CompletionResult):
        return "ok"
    if result.error_class is ErrorClass.TRANSIENT:
        return "transient"
    if result.error_class is ErrorClass.INTERNAL:
        return "none"
    return "fail" if result.error_class in RETRYABLE else "other"


class DeploymentStats(Middleware):
    def __init__(self, store: StatsStore, *, rng: random.Random | None = None) -> None:
        self.store = store
        self.rng = rng or random.Random()
        self.backend = "redis" if isinstance(store, RedisStats) else "in-process"
        self._tokens: dict[int, str] = {}  # id(ctx) -> its in-flight token
        self._redis_down_until = 0.0
        self.skipped: dict[tuple[str, str], int] = {}  # (op, reason) -> updates skipped

    @classmethod
    def from_settings(cls) -> DeploymentStats:
        url = stats_redis_url()
        if url is None:
            log.info("deployment statistics are per process: the broker is not Redis")
            return cls(MemoryStats())
        return cls(RedisStats(url))

    async def _guarded(self, what: str, call, *args):  # type: ignore[no-untyped-def]
        """Run a store call; on a Redis error log it, skip Redis for a few seconds, return
        None. Statistics never hold up or fail a provider call; every call skipped is
        counted (a metric, not only a log line)."""
        if time.monotonic() < self._redis_down_until:
            self._skip(what, "redis_down")
            return None
        try:
            return await call(*args)
        except Exception as exc:
            self._skip(what, "error")
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            log.warning("deployment statistics: %s failed (%s); going on without", what, exc)
            return None

    def _skip(self, what: str, reason: str) -> None:
        self.skipped[(what, reason)] = self.skipped.get((what, reason), 0) + 1
        from worker.metrics import DEPLOYMENT_STATS_SKIPPED

        DEPLOYMENT_STATS_SKIPPED.labels(op=what, reason=reason).inc()

    async def order(
        self, config: RoutingConfig, tier: str, names: list[str], prompt_tokens: int
    ) -> list[str]:
        if len(names) < 2:
            return names
        read = await self._guarded("read", self.store.read, names)
        now, stats = read if read is not None else (time.time(), {})
        return order_deployments(config, tier, names, prompt_tokens, stats, self.rng, now=now)

    async def before_call(self, ctx: CallContext) -> Denied | None:
        """Counts the call in flight, unless the deployment's circuit refuses it: then the
        call is not made, and is no attempt (worker/attempt.py tries the rung's next
        deployment, or the item waits)."""
        token = uuid.uuid4().hex
        t = ctx.deployment.timeouts
        ttl = t.connect + t.write + t.read + t.pool + 30  # the longest one call can take
        self._tokens[id(ctx)] = token
        admitted = await self._guarded("begin", self.store.begin, ctx.deployment_name, token, ttl)
        if admitted is None or not admitted.refused:
            return None  # closed, a probe, or Redis unreachable (the circuit is advice too)
        self._tokens.pop(id(ctx), None)
        name, probing = ctx.deployment_name, admitted.verdict == "probing"
        since = admitted.down_since or admitted.now
        down_for, retry_in = admitted.now - since, max(admitted.until - admitted.now, 0.0)
        if probing:  # the lease lasts as long as a call may; a refused connection takes ms
            retry_in = min(retry_in, ctx.config.tier(ctx.item.tier).circuit_open_s)
        state = "half-open, a probe call is testing it" if probing else "open"
        return Denied(
            f"deployment {name}: circuit {state} (down for {down_for:.0f} s)",
            circuit=CircuitOpen(name, since, down_for, retry_in, probing),
        )

    async def after_call(
        self, ctx: CallContext, record: AttemptRecord, result: CompletionResult | ProviderError
    ) -> None:
        tier = ctx.config.tier(ctx.item.tier)
        outcome = call_outcome(result)
        latency = record.latency_ms if outcome == "ok" and record.latency_ms > 0 else None
        token = self._tokens.pop(id(ctx), "")
        rule = CircuitRule(
            tier.circuit_after_failures, tier.circuit_open_s, tier.circuit_open_max_s
        )
        ended = await self._guarded(
            "record",
            self.store.end,
            ctx.deployment_name,
            token,
            latency,
            outcome,
            tier.cooldown_after_failures,
            tier.cooldown_s,
            rule,
        )
        if ended is None:
            return
        if ended.cooled:
            log.warning(
                "deployment %s cools down for %.0f s after %d failures in a row (last: %s)",
                ctx.deployment_name,
                tier.cooldown_s,
                tier.cooldown_after_failures,
                record.error_message,
            )
        if ended.circuit:
            circuit_event(ctx.deployment_name, ended.circuit, ended, rule, record)

    async def release(self, ctx: CallContext) -> None:
        token = self._tokens.pop(id(ctx), "")
        # "none": frees the in-flight slot and a probe lease, says nothing of the deployment
        await self._guarded(
            "release", self.store.end, ctx.deployment_name, token, None, "none", 1, 0
        )


def circuit_event(
    name: str, event: str, ended: Ended, rule: CircuitRule, record: AttemptRecord
) -> None:
    """One WARNING line and one count per change of a circuit, from the worker that made it:
    what an operator follows during an outage (docs/operations.md)."""
    from worker.metrics import CIRCUIT_EVENTS
    from worker.outage import utc_clock

    CIRCUIT_EVENTS.labels(deployment=name, event=event).inc()
    down = f"down since {utc_clock(ended.down_since)}" if ended.down_since else "down"
    if event == "opened":
        log.warning(
            "deployment %s: circuit opened after %d transient failures in a row (last: %s); "
            "calls to it are refused for %.0f s, then one probe call tests it",
            name, rule.after_failures, record.error_message, ended.open_for_s,
        )  # fmt: skip
    elif event == "reopened":
        log.warning(
            "deployment %s: probe failed (%s); circuit open %.0f s more, %s",
            name, record.error_message, ended.open_for_s, down,
        )  # fmt: skip
    else:
        log.warning("deployment %s: probe answered; circuit closed (%s)", name, down)
