"""Global rate limits per deployment: requests and tokens per minute, shared by every worker.

Two token buckets per provider endpoint and model (RPM and TPM), kept in Redis and changed only
by one Lua script, on Redis's clock (`redis.call('TIME')`), so every process on every host sees
the same buckets. Before a call the worker charges 1 request and the call's most tokens
(`prompt + max output`); after it, the charge is corrected with the usage the provider counted,
and the provider's `x-ratelimit-remaining-*` headers lower the buckets when it knows better.

Running into a limit delays the call, never fails it. The script hands out future slots: a call
that does not fit now is charged at once and told how long to wait (the bucket goes into debt),
so hundreds of waiting calls cost one Redis round trip each instead of polling in a herd. A wait
longer than `max_reserve_s` charges nothing: the caller sleeps and asks again.

When the broker is not Redis (the embedded demo), the buckets live in the process: correct for a
single worker process, not global. `RateLimiter.backend` says which one is in use.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass

from ledger.outcomes import AttemptRecord
from routing.deployments import Deployment
from routing.types import CompletionResult, ErrorClass, ProviderError
from worker.middleware import CallContext, Denied, Middleware

log = logging.getLogger("batchrouter.ratelimit")
KEY_PREFIX = "batchrouter:ratelimit:"
UNSET = -1.0  # "no value" in the script's arguments

# KEYS: rpm bucket, tpm bucket. ARGV: op, burst_s, rpm limit, tpm limit, then per op:
#   take:   requests, tokens, max_reserve_s  -> {granted 1|0, wait_s}
#   settle: tokens delta (may be < 0), requests remaining, tokens remaining  -> {1, 0}
# A limit <= 0 means that bucket is not enforced. A bucket is a hash {level, ts}: level may go
# negative (slots handed out ahead); it refills at limit/60 per second up to limit*burst_s/60.
LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op, burst = ARGV[1], tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local levels, caps, rates = {}, {}, {}
for i = 1, 2 do
  if limits[i] > 0 then
    caps[i] = math.max(1, limits[i] * burst / 60)
    rates[i] = limits[i] / 60
    local h = redis.call('HMGET', KEYS[i], 'level', 'ts')
    local level, ts = tonumber(h[1]), tonumber(h[2])
    if level == nil or ts == nil then level, ts = caps[i], now end
    levels[i] = math.min(caps[i], level + math.max(0, now - ts) * rates[i])
  end
end
local granted, wait = 1, 0
if op == 'take' then
  local costs = {tonumber(ARGV[5]), tonumber(ARGV[6])}
  for i = 1, 2 do
    if levels[i] then
      costs[i] = math.min(costs[i], caps[i])
      if levels[i] < costs[i] then wait = math.max(wait, (costs[i] - levels[i]) / rates[i]) end
    end
  end
  if wait > tonumber(ARGV[7]) then
    granted = 0
  else
    for i = 1, 2 do if levels[i] then levels[i] = levels[i] - costs[i] end end
  end
else
  local remaining = {tonumber(ARGV[6]), tonumber(ARGV[7])}
  if levels[2] then levels[2] = math.min(caps[2], levels[2] - tonumber(ARGV[5])) end
  for i = 1, 2 do
    if levels[i] and remaining[i] >= 0 then levels[i] = math.min(levels[i], remaining[i]) end
  end
end
for i = 1, 2 do
  if levels[i] then
    redis.call('HSET', KEYS[i], 'level', tostring(levels[i]), 'ts', tostring(now))
    local ttl = math.ceil((caps[i] - levels[i]) / rates[i]) + 5
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return {granted, tostring(wait)}
"""


def bucket_key(deployment: Deployment) -> str:
    """One pair of buckets per provider endpoint and model: the unit providers limit."""
    return f"{KEY_PREFIX}{deployment.provider}|{deployment.api_base or ''}|{deployment.model}"


@dataclass
class _LocalBucket:
    level: float
    stamp: float


class LocalBuckets:
    """The same arithmetic as the Lua script, in this process only (no Redis)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _LocalBucket] = {}
        self._lock = threading.Lock()
        self.clock = time.monotonic  # tests freeze it

    def _level(self, key: str, limit: float, burst_s: float, now: float) -> tuple[float, float]:
        cap, rate = max(1.0, limit * burst_s / 60), limit / 60
        bucket = self._buckets.setdefault(key, _LocalBucket(cap, now))
        bucket.level = min(cap, bucket.level + max(0.0, now - bucket.stamp) * rate)
        bucket.stamp = now
        return cap, rate

    def run(self, keys: list[str], args: list[float | str]) -> tuple[int, float]:
        op, burst, limits = str(args[0]), float(args[1]), [float(args[2]), float(args[3])]
        now = self.clock()
        with self._lock:
            live = [i for i in range(2) if limits[i] > 0]
            shape = {i: self._level(keys[i], limits[i], burst, now) for i in live}
            if op == "take":
                costs = [min(float(args[4 + i]), shape[i][0]) if i in shape else 0 for i in (0, 1)]
                wait = max(
                    [(costs[i] - self._buckets[keys[i]].level) / shape[i][1] for i in live] + [0.0]
                )
                if wait > float(args[6]):
                    return 0, wait
                for i in live:
                    self._buckets[keys[i]].level -= costs[i]
                return 1, wait
            if 1 in shape:
                tpm = self._buckets[keys[1]]
                tpm.level = min(shape[1][0], tpm.level - float(args[4]))
            for i in live:
                remaining = float(args[5 + i])
                if remaining >= 0:
                    self._buckets[keys[i]].level = min(self._buckets[keys[i]].level, remaining)
            return 1, 0.0


class RateLimiter(Middleware):
    """`before_call` waits until the deployment's RPM and TPM buckets admit the call;
    `after_call` corrects the token charge and applies the provider's remaining-limit headers."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        burst_s: float = 10.0,
        max_reserve_s: float = 30.0,
        poll_s: float = 2.0,
    ) -> None:
        self.redis_url = redis_url
        self.burst_s = burst_s
        self.max_reserve_s = max_reserve_s
        self.poll_s = poll_s
        self.local = LocalBuckets()
        self.backend = "redis" if redis_url else "in-process"
        self._clients: dict[asyncio.AbstractEventLoop, object] = {}
        self._scripts: dict[asyncio.AbstractEventLoop, object] = {}
        self.waited_s = 0.0  # total time calls spent waiting for a slot (stats, tests)
        self._warned = False

    @classmethod
    def from_settings(cls) -> RateLimiter:
        from routing.settings import get_settings

        settings = get_settings()
        return cls(
            settings.resolved_ratelimit_redis_url(),
            burst_s=settings.ratelimit_burst_s,
            max_reserve_s=settings.ratelimit_max_reserve_s,
        )

    def _script(self):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        script = self._scripts.get(loop)
        if script is None:
            import redis.asyncio as aioredis

            from routing.settings import get_settings
            from worker.connections import packed_by_hiredis, redis_socket_options

            for old in [lp for lp in self._clients if lp.is_closed()]:
                self._clients.pop(old, None)
                self._scripts.pop(old, None)
            # A few connections, waited for: hundreds of calls asking at once must not open
            # hundreds of sockets (each script call takes well under a millisecond).
            # Timeouts and keepalive (worker/connections.py): a cut-off Redis fails the
            # script within seconds (then buckets are local) instead of hanging every call.
            settings = get_settings()
            pool = aioredis.BlockingConnectionPool.from_url(
                self.redis_url or "",
                max_connections=16,
                timeout=settings.redis_timeout_s,
                **redis_socket_options(settings),
            )
            client = aioredis.Redis(connection_pool=packed_by_hiredis(pool))
            script = client.register_script(LUA)
            self._clients[loop], self._scripts[loop] = client, script
        return script

    async def _eval(self, keys: list[str], args: list[float | str]) -> tuple[int, float]:
        if self.redis_url:
            try:
                granted, wait = await self._script()(keys=keys, args=args)
                return int(granted), float(wait)
            except Exception as exc:  # Redis away: limit locally rather than fail the call
                log.warning("rate limiter: Redis unavailable (%s); limiting in-process", exc)
        return self.local.run(keys, args)

    @staticmethod
    def _limits(deployment: Deployment) -> tuple[float, float]:
        return float(deployment.rpm or 0), float(deployment.tpm or 0)

    async def acquire(self, deployment: Deployment, tokens: int) -> float:
        """Wait until the call may go; return the seconds waited. Never raises on a limit."""
        rpm, tpm = self._limits(deployment)
        if not rpm and not tpm:
            return 0.0
        if not self.redis_url and not self._warned:
            self._warned = True
            log.warning(
                "rate limits are per process: the broker is not Redis, so RPM/TPM buckets "
                "cannot be shared between worker processes"
            )
        key = bucket_key(deployment)
        keys = [f"{key}:rpm", f"{key}:tpm"]
        waited = 0.0
        while True:
            args: list[float | str] = ["take", self.burst_s, rpm, tpm, 1, tokens]
            granted, wait = await self._eval(keys, [*args, self.max_reserve_s])
            if granted:
                if wait > 0:
                    await asyncio.sleep(wait)
                    waited += wait
                    self.waited_s += wait
                return waited
            # Too far ahead to reserve: come back when a reservation would be possible.
            pause = min(wait - self.max_reserve_s, self.poll_s) * (0.5 + random.random() / 2)
            await asyncio.sleep(max(pause, 0.01))
            waited += pause
            self.waited_s += pause

    async def settle(
        self,
        deployment: Deployment,
        token_delta: float,
        requests_remaining: float = UNSET,
        tokens_remaining: float = UNSET,
    ) -> None:
        rpm, tpm = self._limits(deployment)
        if not rpm and not tpm:
            return
        if token_delta == 0 and requests_remaining < 0 and tokens_remaining < 0:
            return
        key = bucket_key(deployment)
        args: list[float | str] = ["settle", self.burst_s, rpm, tpm, token_delta]
        await self._eval(
            [f"{key}:rpm", f"{key}:tpm"], [*args, requests_remaining, tokens_remaining]
        )

    async def before_call(self, ctx: CallContext) -> Denied | None:
        await self.acquire(ctx.deployment, ctx.prompt_tokens + ctx.max_output_tokens)
        return None

    async def after_call(
        self, ctx: CallContext, record: AttemptRecord, result: CompletionResult | ProviderError
    ) -> None:
        if not (ctx.deployment.rpm or ctx.deployment.tpm):
            return
        charged = ctx.prompt_tokens + ctx.max_output_tokens
        delta = 0.0
        if record.input_tokens or record.output_tokens:
            delta = counted_tokens(ctx, record) - charged
        requests_left = tokens_left = UNSET
        if isinstance(result, CompletionResult) and result.rate_limit:
            requests_left = float(result.rate_limit.get("requests_remaining", UNSET))
            tokens_left = float(result.rate_limit.get("tokens_remaining", UNSET))
        elif isinstance(result, ProviderError) and result.error_class is ErrorClass.RATE_LIMITED:
            requests_left = tokens_left = 0.0  # the provider says no: empty both buckets
        await self.settle(ctx.deployment, delta, requests_left, tokens_left)


def counted_tokens(ctx: CallContext, record: AttemptRecord) -> float:
    """The tokens the provider counts against its TPM limit for this call.

    Anthropic counts the output actually produced (its output-token limit is adjusted at the
    end of a request), so the unused part of `max_tokens` is given back. OpenAI and the servers
    speaking its format count the prompt plus the whole `max_tokens` at request time and give
    nothing back, so only the prompt estimate is corrected.
    """
    if ctx.deployment.provider == "anthropic":
        return float(record.input_tokens + record.output_tokens)
    return float(record.input_tokens + max(ctx.max_output_tokens, record.output_tokens))
