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

The state lives in the broker's Redis (BATCHROUTER_REDIS_URL overrides it). When the broker is
not Redis (the embedded demo on a filesystem broker) the statistics live in this process's
memory: correct for one worker process, not shared between several. Statistics are advice:
when Redis is unreachable the strategy runs on what it has and no call is held up.

The Redis pool has a connection for every call the process may have in flight
(BATCHROUTER_MAX_IN_FLIGHT, plus a few): each call holds at most one statistics script at a
time, so no call waits for a connection another call holds while a busy event loop reads its
reply (issue 19: a pool of 16 ran dry at 250 calls in flight). Connections open only when
needed. Every update that is skipped anyway (Redis down or slow) is counted in
`batchrouter_deployment_stats_skipped_total{op, reason}` and in `DeploymentStats.skipped`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from typing import Protocol

from ledger.outcomes import AttemptRecord
from routing.config import RoutingConfig
from routing.policy import RETRYABLE
from routing.selection import LiveStats, order_deployments
from routing.types import CompletionResult, ProviderError
from worker.middleware import CallContext, Middleware

log = logging.getLogger("batchrouter.deployment_stats")
KEY_PREFIX = "batchrouter:deployment:"
STATS_TTL_S = 24 * 3600  # statistics of a deployment nobody called for a day are dropped
EWMA_ALPHA = 0.3  # weight of the newest latency sample
REDIS_RETRY_S = 5.0  # after a Redis error, leave it alone this long
POOL_SPARE = 8  # connections beyond one per call in flight (order reads of a chunk's items)

# KEYS: stats hash, in-flight set of each deployment, in turn. -> {now, n1, ewma1, cool1, ...}
READ_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {tostring(now)}
for i = 1, #KEYS, 2 do
  local h = redis.call('HMGET', KEYS[i], 'ewma', 'cooling_until')
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 1], '(' .. tostring(now), '+inf')
  out[#out + 1] = h[1] or ''
  out[#out + 1] = h[2] or ''
end
return out
"""
# KEYS: in-flight set. ARGV: token, ttl_s.
BEGIN_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""
# KEYS: stats hash, in-flight set. ARGV: token, latency_ms (< 0: none), outcome (ok | fail |
# other), alpha, failures before a cooldown, cooldown_s, stats ttl. -> 1 when it starts a cooldown
END_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREM', KEYS[2], ARGV[1])
local latency = tonumber(ARGV[2])
if latency >= 0 then
  local old = tonumber(redis.call('HGET', KEYS[1], 'ewma'))
  local new = latency
  if old then new = old + tonumber(ARGV[4]) * (latency - old) end
  redis.call('HSET', KEYS[1], 'ewma', tostring(new))
end
local cooled = 0
if ARGV[3] == 'ok' then
  redis.call('HSET', KEYS[1], 'fails', 0)
elseif ARGV[3] == 'fail' then
  local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
  if fails >= tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], 'fails', 0, 'cooling_until', tostring(now + tonumber(ARGV[6])))
    cooled = 1
  end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
return cooled
"""


class StatsStore(Protocol):
    async def read(self, names: list[str]) -> tuple[float, dict[str, LiveStats]]: ...

    async def begin(self, name: str, token: str, ttl_s: float) -> None: ...

    async def end(
        self,
        name: str,
        token: str,
        latency_ms: float | None,
        outcome: str,
        threshold: int,
        cooldown_s: float,
    ) -> bool: ...


class RedisStats:
    """The shared store: one async client per event loop (the worker has one long-lived loop;
    a client must not outlive or cross the loop it was opened on)."""

    def __init__(
        self,
        url: str,
        prefix: str = KEY_PREFIX,
        alpha: float = EWMA_ALPHA,
        max_connections: int | None = None,
    ) -> None:
        self.url, self.prefix, self.alpha = url, prefix, alpha
        if max_connections is None:
            from routing.settings import get_settings

            max_connections = get_settings().max_in_flight + POOL_SPARE
        self.max_connections = max_connections
        self._scripts: dict[asyncio.AbstractEventLoop, tuple] = {}

    def _for_loop(self) -> tuple:  # (client, read, begin, end)
        loop = asyncio.get_running_loop()
        found = self._scripts.get(loop)
        if found is None:
            import redis.asyncio as aioredis

            for old in [lp for lp in self._scripts if lp.is_closed()]:
                del self._scripts[old]
            # One connection per call in flight at most, opened when first needed: a script
            # takes well under a millisecond, but its connection stays held until the busy
            # loop reads the reply, so a smaller pool makes calls wait on each other.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=2.0,
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
                health_check_interval=25,
            )
            client = aioredis.Redis(connection_pool=pool)
            found = (client, *(client.register_script(s) for s in (READ_LUA, BEGIN_LUA, END_LUA)))
            self._scripts[loop] = found
        return found

    async def aclose(self) -> None:
        """Close the running loop's client (tests, and callers running their own loops)."""
        found = self._scripts.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()

    def _keys(self, name: str) -> list[str]:
        return [f"{self.prefix}{name}", f"{self.prefix}{name}:inflight"]

    async def read(self, names: list[str]) -> tuple[float, dict[str, LiveStats]]:
        _, script, _, _ = self._for_loop()
        keys = [key for name in names for key in self._keys(name)]
        reply = await script(keys=keys)
        now, stats = float(reply[0]), {}
        for index, name in enumerate(names):
            in_flight, ewma, cooling = reply[1 + 3 * index : 4 + 3 * index]
            stats[name] = LiveStats(
                in_flight=int(in_flight),
                latency_ewma_ms=float(ewma) if ewma else None,
                cooling_until=float(cooling) if cooling else 0.0,
            )
        return now, stats

    async def begin(self, name: str, token: str, ttl_s: float) -> None:
        _, _, script, _ = self._for_loop()
        await script(keys=self._keys(name)[1:], args=[token, ttl_s])

    async def end(
        self,
        name: str,
        token: str,
        latency_ms: float | None,
        outcome: str,
        threshold: int,
        cooldown_s: float,
    ) -> bool:
        _, _, _, script = self._for_loop()
        latency = -1.0 if latency_ms is None else latency_ms
        args = [token, latency, outcome, self.alpha, threshold, cooldown_s, STATS_TTL_S]
        return bool(await script(keys=self._keys(name), args=args))


class MemoryStats:
    """The same bookkeeping in this process only (no Redis: the embedded demo)."""

    def __init__(self, alpha: float = EWMA_ALPHA, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.alpha, self.clock = alpha, clock
        self.in_flight: dict[str, dict[str, float]] = {}  # name -> token -> expiry
        self.ewma: dict[str, float] = {}
        self.fails: dict[str, int] = {}
        self.cooling_until: dict[str, float] = {}

    async def read(self, names: list[str]) -> tuple[float, dict[str, LiveStats]]:
        now = self.clock()
        return now, {
            name: LiveStats(
                in_flight=sum(1 for e in self.in_flight.get(name, {}).values() if e > now),
                latency_ewma_ms=self.ewma.get(name),
                cooling_until=self.cooling_until.get(name, 0.0),
            )
            for name in names
        }

    async def begin(self, name: str, token: str, ttl_s: float) -> None:
        now = self.clock()
        calls = self.in_flight.setdefault(name, {})
        for stale in [t for t, expiry in calls.items() if expiry <= now]:
            del calls[stale]
        calls[token] = now + ttl_s

    async def end(
        self,
        name: str,
        token: str,
        latency_ms: float | None,
        outcome: str,
        threshold: int,
        cooldown_s: float,
    ) -> bool:
        self.in_flight.get(name, {}).pop(token, None)
        if latency_ms is not None:
            old = self.ewma.get(name)
            self.ewma[name] = latency_ms if old is None else old + self.alpha * (latency_ms - old)
        if outcome == "ok":
            self.fails[name] = 0
        elif outcome == "fail":
            self.fails[name] = self.fails.get(name, 0) + 1
            if self.fails[name] >= threshold:
                self.fails[name] = 0
                self.cooling_until[name] = self.clock() + cooldown_s
                return True
        return False


def stats_redis_url() -> str | None:
    """BATCHROUTER_REDIS_URL, else the broker's URL when the broker is Redis, else None."""
    from routing.settings import get_settings

    explicit = os.environ.get("BATCHROUTER_REDIS_URL")
    if explicit:
        return explicit
    broker = get_settings().resolved_broker_url()
    return broker if broker.startswith(("redis://", "rediss://", "unix://")) else None


def call_outcome(result: CompletionResult | ProviderError) -> str:
    """ok: the deployment answered (whatever the checks say); fail: counts towards a
    cooldown; other: says nothing about the deployment's health (a too-long prompt, a 400)."""
    if isinstance(result, CompletionResult):
        return "ok"
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

    async def before_call(self, ctx: CallContext) -> None:
        token = uuid.uuid4().hex
        t = ctx.deployment.timeouts
        ttl = t.connect + t.write + t.read + t.pool + 30  # the longest one call can take
        self._tokens[id(ctx)] = token
        await self._guarded("begin", self.store.begin, ctx.deployment_name, token, ttl)
        return None

    async def after_call(
        self, ctx: CallContext, record: AttemptRecord, result: CompletionResult | ProviderError
    ) -> None:
        tier = ctx.config.tier(ctx.item.tier)
        outcome = call_outcome(result)
        latency = record.latency_ms if outcome == "ok" and record.latency_ms > 0 else None
        token = self._tokens.pop(id(ctx), "")
        cooled = await self._guarded(
            "record",
            self.store.end,
            ctx.deployment_name,
            token,
            latency,
            outcome,
            tier.cooldown_after_failures,
            tier.cooldown_s,
        )
        if cooled:
            log.warning(
                "deployment %s cools down for %.0f s after %d failures in a row (last: %s)",
                ctx.deployment_name,
                tier.cooldown_s,
                tier.cooldown_after_failures,
                record.error_message,
            )

    async def release(self, ctx: CallContext) -> None:
        token = self._tokens.pop(id(ctx), "")
        await self._guarded(
            "release", self.store.end, ctx.deployment_name, token, None, "other", 1, 0
        )
