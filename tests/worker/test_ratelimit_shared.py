"""The global rate limiter on the real Redis: the Lua script, and two processes sharing a bucket."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from routing.deployments import Deployment
from worker.ratelimit import RateLimiter, bucket_key

pytestmark = pytest.mark.redis
RPM = 1200  # 20 calls/s
BURST_S = 0.5  # a burst of 10 calls
WINDOW_S = 2.0


def deployment() -> Deployment:
    return Deployment(provider="openai", model="gpt-4o-mini", api_base="http://shared/v1", rpm=RPM)


def _hammer(redis_url: str, start_at: float, out: multiprocessing.Queue) -> None:
    """Ask for as many calls as possible during the window; report when each one went."""
    limiter = RateLimiter(redis_url, burst_s=BURST_S, max_reserve_s=0.2, poll_s=0.05)

    async def one(went: list[float]) -> None:
        while time.time() < start_at + WINDOW_S:
            await limiter.acquire(deployment(), 10)
            went.append(time.time())

    async def main() -> list[float]:
        went: list[float] = []
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(one(went) for _ in range(20)))
        return went

    out.put(asyncio.run(main()))


def test_two_processes_sharing_one_bucket_never_exceed_it(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    start_at = time.time() + 3.0  # both processes are up by then
    processes = [context.Process(target=_hammer, args=(redis_url, start_at, out)) for _ in "ab"]
    for process in processes:
        process.start()
    runs = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    calls = sorted(t for run in runs for t in run if t < start_at + WINDOW_S)
    allowed = RPM / 60 * BURST_S + RPM / 60 * WINDOW_S  # the burst, then the refill
    assert all(run for run in runs), "both processes got calls through"
    assert len(calls) <= allowed + 1, (len(calls), allowed)
    assert len(calls) >= 0.8 * allowed, (len(calls), allowed)  # and the limit is used
    # No sliding second after the burst holds more than the rate plus one burst.
    for first in calls:
        within = sum(1 for t in calls if first <= t < first + 1.0)
        assert within <= RPM / 60 + RPM / 60 * BURST_S + 1


def test_the_script_corrects_and_tightens_on_redis(redis_url: str) -> None:
    import redis

    limiter = RateLimiter(redis_url, burst_s=60)
    dep = Deployment(provider="openai", model="m", api_base="http://x/v1", rpm=600, tpm=60_000)

    async def go() -> None:
        await limiter.acquire(dep, 1000)
        await limiter.settle(dep, 500)
        await limiter.settle(dep, 0, requests_remaining=7)

    asyncio.run(go())
    client = redis.Redis.from_url(redis_url)
    key = bucket_key(dep)
    tpm = float(client.hget(f"{key}:tpm", "level") or 0)
    rpm = float(client.hget(f"{key}:rpm", "level") or 0)
    assert 58_400 < tpm <= 58_520 and rpm <= 7
    assert 0 < client.ttl(f"{key}:tpm") <= 70  # idle buckets expire
    client.close()
