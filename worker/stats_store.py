"""Where deployment statistics and circuits live: Redis (shared by every worker), or this
process's memory (no Redis: the embedded demo, unit tests). worker/deployment_stats.py is the
middleware that feeds them; this module is only the bookkeeping, one Lua script per step so
that every worker sees one consistent state, on Redis's clock.

Per deployment, one hash (`batchrouter:deployment:NAME`) and one in-flight sorted set:
- `ewma`: latency of answered calls; `fails`, `cooling_until`: the cooldown (tried last);
- the circuit: `tfails` counts transient failures in a row (connection refused, 5xx,
  timeouts); the Nth opens the circuit: `open_until`, `down_since` (the outage's start, kept
  across reopenings), `opens` (how many times in a row). While it is open every call is
  refused. Once `open_until` passes it is half-open: the first call takes the probe lease
  (`probe`, `probe_until`), the others are refused while the probe runs. A probe that fails
  with a transient error opens it again for twice as long (routing/policy.circuit_open_s); a
  probe that gets any answer (even a 429 or a 400: the server is up) closes it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from routing.policy import circuit_open_s
from routing.selection import LiveStats
from worker.script_batch import ScriptBatch

KEY_PREFIX = "batchrouter:deployment:"
STATS_TTL_S = 24 * 3600  # statistics of a deployment nobody called for a day are dropped
EWMA_ALPHA = 0.3  # weight of the newest latency sample
POOL_SPARE = 8  # connections beyond one per call in flight (order reads of a chunk's items)

# KEYS: stats hash, in-flight set of each deployment, in turn. -> {now, n1, ewma1, cool1, ...}
# An open circuit counts as a cooldown: the deployment is tried last.
READ_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {tostring(now)}
for i = 1, #KEYS, 2 do
  local h = redis.call('HMGET', KEYS[i], 'ewma', 'cooling_until', 'open_until')
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 1], '(' .. tostring(now), '+inf')
  out[#out + 1] = h[1] or ''
  out[#out + 1] = tostring(math.max(tonumber(h[2]) or 0, tonumber(h[3]) or 0))
end
return out
"""
# KEYS: stats hash, in-flight set. ARGV: token, ttl_s.
# -> {verdict (ok | probe | open | probing), now, down_since, until}
BEGIN_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local c = redis.call('HMGET', KEYS[1], 'open_until', 'down_since', 'probe_until')
local open_until = tonumber(c[1]) or 0
local verdict = 'ok'
if open_until > 0 then
  if now < open_until then
    return {'open', tostring(now), c[2] or '', tostring(open_until)}
  end
  local probe_until = tonumber(c[3]) or 0
  if probe_until > now then
    return {'probing', tostring(now), c[2] or '', tostring(probe_until)}
  end
  redis.call('HSET', KEYS[1], 'probe', ARGV[1], 'probe_until', tostring(now + tonumber(ARGV[2])))
  verdict = 'probe'
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[2])) + 1)
return {verdict, tostring(now), c[2] or '', tostring(open_until)}
"""
# KEYS: stats hash, in-flight set. ARGV: token, latency_ms (< 0: none), outcome (ok | fail |
# transient | other | none), alpha, failures before a cooldown, cooldown_s, stats ttl,
# transient failures before the circuit opens, its first open_s, its max open_s.
# -> {1 when it starts a cooldown, circuit event ('' | opened | reopened | closed), open for,
#     down_since}
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
local o = ARGV[3]
local cooled = 0
if o == 'ok' then
  redis.call('HSET', KEYS[1], 'fails', 0)
elseif o == 'fail' or o == 'transient' then
  local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
  if fails >= tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], 'fails', 0, 'cooling_until', tostring(now + tonumber(ARGV[6])))
    cooled = 1
  end
end
local c = redis.call('HMGET', KEYS[1], 'open_until', 'probe', 'down_since')
local open_until = tonumber(c[1]) or 0
local probing = c[2] == ARGV[1]
if probing then redis.call('HDEL', KEYS[1], 'probe', 'probe_until') end
local event = ''
local open_for = 0
if o == 'transient' then
  if open_until == 0 then
    if redis.call('HINCRBY', KEYS[1], 'tfails', 1) >= tonumber(ARGV[8]) then
      open_for = tonumber(ARGV[9])
      redis.call('HSET', KEYS[1], 'tfails', 0, 'open_until', tostring(now + open_for),
        'down_since', tostring(now), 'opens', 1)
      c[3] = tostring(now)
      event = 'opened'
    end
  elseif probing then
    local opens = redis.call('HINCRBY', KEYS[1], 'opens', 1)
    open_for = math.min(tonumber(ARGV[9]) * 2 ^ (opens - 1), tonumber(ARGV[10]))
    redis.call('HSET', KEYS[1], 'open_until', tostring(now + open_for))
    event = 'reopened'
  end
elseif o ~= 'none' then
  redis.call('HSET', KEYS[1], 'tfails', 0)
  -- an answer closes it when it tested the deployment after the wait (a call that started
  -- before the outage and answered late proves nothing about now)
  if open_until > 0 and (probing or now >= open_until) then
    redis.call('HDEL', KEYS[1], 'open_until', 'down_since', 'opens', 'probe', 'probe_until')
    event = 'closed'
  end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
return {cooled, event, tostring(open_for), c[3] or ''}
"""


@dataclass(frozen=True)
class CircuitRule:
    """A tier's circuit settings, passed with each call's end (routing/config.Tier)."""

    after_failures: int = 5
    open_s: float = 5.0
    open_max_s: float = 60.0


@dataclass(frozen=True)
class Admission:
    """What the circuit says of a call about to start. ok: closed; probe: half-open, this call
    tests the deployment; open / probing: refused until `until` (epoch s, Redis's clock)."""

    verdict: str
    now: float
    down_since: float | None = None
    until: float = 0.0

    @property
    def refused(self) -> bool:
        return self.verdict in ("open", "probing")


@dataclass(frozen=True)
class Ended:
    cooled: bool  # this failure started a cooldown
    circuit: str = ""  # '' | opened | reopened | closed
    open_for_s: float = 0.0  # opened or reopened: for how long
    down_since: float | None = None  # the outage's start, when the circuit was open


class StatsStore(Protocol):
    async def read(self, names: list[str]) -> tuple[float, dict[str, LiveStats]]: ...

    async def begin(self, name: str, token: str, ttl_s: float) -> Admission: ...

    async def end(
        self,
        name: str,
        token: str,
        latency_ms: float | None,
        outcome: str,
        threshold: int,
        cooldown_s: float,
        circuit: CircuitRule = CircuitRule(),
    ) -> Ended: ...


def _number(value: object) -> float | None:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return float(text) if text else None


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

    def _for_loop(self) -> tuple:  # (batch, read, begin, end)
        loop = asyncio.get_running_loop()
        found = self._scripts.get(loop)
        if found is None:
            import redis.asyncio as aioredis

            for old in [lp for lp in self._scripts if lp.is_closed()]:
                del self._scripts[old]
            # One connection per call in flight at most, opened when first needed: a script
            # takes well under a millisecond, but its connection stays held until the busy
            # loop reads the reply, so a smaller pool makes calls wait on each other.
            from worker.connections import packed_by_hiredis

            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=2.0,
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
                health_check_interval=25,
            )
            client = aioredis.Redis(connection_pool=packed_by_hiredis(pool))
            scripts = (client.register_script(s) for s in (READ_LUA, BEGIN_LUA, END_LUA))
            # The calls of one loop tick go to Redis together (worker/script_batch.py).
            found = (ScriptBatch(client), *scripts)
            self._scripts[loop] = found
        return found

    async def aclose(self) -> None:
        """Close the running loop's client (tests, and callers running their own loops)."""
        found = self._scripts.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].client.aclose()

    def _keys(self, name: str) -> list[str]:
        return [f"{self.prefix}{name}", f"{self.prefix}{name}:inflight"]

    async def read(self, names: list[str]) -> tuple[float, dict[str, LiveStats]]:
        batch, script, _, _ = self._for_loop()
        keys = [key for name in names for key in self._keys(name)]
        reply = await batch.call(script, keys)
        now, stats = float(reply[0]), {}
        for index, name in enumerate(names):
            in_flight, ewma, cooling = reply[1 + 3 * index : 4 + 3 * index]
            stats[name] = LiveStats(
                in_flight=int(in_flight),
                latency_ewma_ms=_number(ewma),
                cooling_until=_number(cooling) or 0.0,
            )
        return now, stats

    async def begin(self, name: str, token: str, ttl_s: float) -> Admission:
        batch, _, script, _ = self._for_loop()
        verdict, now, down_since, until = await batch.call(script, self._keys(name), [token, ttl_s])
        return Admission(
            verdict.decode() if isinstance(verdict, bytes) else str(verdict),
            _number(now) or 0.0,
            _number(down_since),
            _number(until) or 0.0,
        )

    async def end(
        self,
        name: str,
        token: str,
        latency_ms: float | None,
        outcome: str,
        threshold: int,
        cooldown_s: float,
        circuit: CircuitRule = CircuitRule(),
    ) -> Ended:
        batch, _, _, script = self._for_loop()
        latency = -1.0 if latency_ms is None else latency_ms
        args = [token, latency, outcome, self.alpha, threshold, cooldown_s, STATS_TTL_S]
        args += [circuit.after_failures, circuit.open_s, circuit.open_max_s]
        cooled, event, open_for, down_since = await batch.call(script, self._keys(name), args)
        return Ended(
            bool(cooled),
            event.decode() if isinstance(event, bytes) else str(event),
            _number(open_for) or 0.0,
            _number(down_since),
        )


@dataclass
class _Circuit:
    tfails: int = 0
    open_until: float = 0.0
    down_since: float | None = None
    opens: int = 0
    probe: str | None = None
    probe_until: float = 0.0


class MemoryStats:
    """The same bookkeeping in this process only (no Redis: the embedded demo)."""

    def __init__(self, alpha: float = EWMA_ALPHA, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.alpha, self.clock = alpha, clock
        self.in_flight: dict[str, dict[str, float]] = {}  # name -> token -> expiry
        self.ewma: dict[str, float] = {}
        self.fails: dict[str, int] = {}
        self.cooling_until: dict[str, float] = {}
        self.circuits: dict[str, _Circuit] = {}

    async def read(self, names: list[str]) -> tuple[float, dict[str, LiveStats]]:
        now = self.clock()
        return now, {
            name: LiveStats(
                in_flight=sum(1 for e in self.in_flight.get(name, {}).values() if e > now),
                latency_ewma_ms=self.ewma.get(name),
                cooling_until=max(
                    self.cooling_until.get(name, 0.0), self._circuit(name).open_until
                ),
            )
            for name in names
        }

    def _circuit(self, name: str) -> _Circuit:
        return self.circuits.setdefault(name, _Circuit())

    async def begin(self, name: str, token: str, ttl_s: float) -> Admission:
        now = self.clock()
        circuit = self._circuit(name)
        verdict = "ok"
        if circuit.open_until > 0:
            if now < circuit.open_until:
                return Admission("open", now, circuit.down_since, circuit.open_until)
            if circuit.probe_until > now:
                return Admission("probing", now, circuit.down_since, circuit.probe_until)
            circuit.probe, circuit.probe_until = token, now + ttl_s
            verdict = "probe"
        calls = self.in_flight.setdefault(name, {})
        for stale in [t for t, expiry in calls.items() if expiry <= now]:
            del calls[stale]
        calls[token] = now + ttl_s
        return Admission(verdict, now, circuit.down_since, circuit.open_until)

    async def end(
        self,
        name: str,
        token: str,
        latency_ms: float | None,
        outcome: str,
        threshold: int,
        cooldown_s: float,
        circuit: CircuitRule = CircuitRule(),
    ) -> Ended:
        now = self.clock()
        self.in_flight.get(name, {}).pop(token, None)
        if latency_ms is not None:
            old = self.ewma.get(name)
            self.ewma[name] = latency_ms if old is None else old + self.alpha * (latency_ms - old)
        cooled = False
        if outcome == "ok":
            self.fails[name] = 0
        elif outcome in ("fail", "transient"):
            self.fails[name] = self.fails.get(name, 0) + 1
            if self.fails[name] >= threshold:
                self.fails[name] = 0
                self.cooling_until[name] = now + cooldown_s
                cooled = True
        state = self._circuit(name)
        probing = state.probe == token
        if probing:
            state.probe, state.probe_until = None, 0.0
        event, open_for, down_since = "", 0.0, state.down_since
        if outcome == "transient":
            if state.open_until == 0:
                state.tfails += 1
                if state.tfails >= circuit.after_failures:
                    open_for, down_since = circuit.open_s, now
                    state.tfails, state.opens = 0, 1
                    state.open_until, state.down_since = now + open_for, now
                    event = "opened"
            elif probing:
                state.opens += 1
                open_for = circuit_open_s(state.opens, circuit.open_s, circuit.open_max_s)
                state.open_until, event = now + open_for, "reopened"
        elif outcome != "none":
            state.tfails = 0
            if state.open_until > 0 and (probing or now >= state.open_until):
                self.circuits[name] = _Circuit()
                event = "closed"
        return Ended(cooled, event, open_for, down_since)
