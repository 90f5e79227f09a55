"""worker/script_batch.py on a real Redis: the scripts a loop tick issues travel as one
pipeline, each caller gets its own reply or error, NOSCRIPT is survived, and a failed round
trip fails every caller in it instead of hanging one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.helpers.net import free_port
from worker.script_batch import ScriptBatch
from worker.stats_store import RedisStats

pytestmark = pytest.mark.redis
INCR = "return redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))"


class CountingBatch(ScriptBatch):
    """Counts the pipelines sent (round trips), nothing else changed."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.pipelines: list[int] = []

    async def _pipeline(self, calls):  # type: ignore[no-untyped-def]
        self.pipelines.append(len(calls))
        return await super()._pipeline(calls)


def test_the_calls_of_one_tick_are_one_round_trip_with_each_callers_reply(redis_url: str) -> None:
    async def main() -> tuple[list[int], list[int], Any]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.delete("test:batch:n")
            batch = CountingBatch(client)
            script = client.register_script(INCR)
            replies = await asyncio.gather(
                *(batch.call(script, ["test:batch:n"], [1]) for _ in range(300))
            )
            return replies, batch.pipelines, await client.get("test:batch:n")
        finally:
            await client.aclose()

    replies, pipelines, total = asyncio.run(main())
    # Run in the order issued, each atomically: every caller saw its own increment.
    assert replies == list(range(1, 301))
    assert total == b"300"
    # One round trip (two if Redis did not know the script yet), never one per call.
    assert pipelines in ([300], [300, 300])


def test_one_callers_error_is_its_own(redis_url: str) -> None:
    async def main() -> list[Any]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            batch = ScriptBatch(client)
            script = client.register_script(INCR)
            calls = [
                batch.call(script, ["test:batch:ok"], [1]),
                batch.call(script, ["test:batch:ok"], ["not a number"]),  # Lua error
                batch.call(script, ["test:batch:ok"], [1]),
            ]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.aclose()

    first, bad, third = asyncio.run(main())
    assert isinstance(bad, ResponseError)
    assert isinstance(first, int) and third == first + 1


def test_scripts_redis_forgot_are_loaded_again(redis_url: str) -> None:
    """Redis restarted without its scripts: the calls that met NOSCRIPT are sent again."""

    async def main() -> tuple[Any, list[int]]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            batch = CountingBatch(client)
            script = client.register_script(INCR)
            await batch.call(script, ["test:batch:flush"], [1])
            await client.script_flush()  # the suite's own redis-server
            replies = await asyncio.gather(
                *(batch.call(script, ["test:batch:flush"], [1]) for _ in range(5))
            )
            return replies, batch.pipelines
        finally:
            await client.aclose()

    replies, pipelines = asyncio.run(main())
    assert len(set(replies)) == 5 and max(replies) - min(replies) == 4
    assert pipelines[-2:] == [5, 5]  # NOSCRIPT for all five, then all five again


def test_a_failed_round_trip_fails_every_caller_and_hangs_none() -> None:
    async def main() -> list[Any]:
        client = aioredis.Redis.from_url(
            f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1
        )
        try:
            batch = ScriptBatch(client)
            script = client.register_script(INCR)
            calls = [batch.call(script, ["k"], [1]) for _ in range(20)]
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        finally:
            await client.aclose()

    replies = asyncio.run(main())
    assert len(replies) == 20 and all(isinstance(r, RedisConnectionError) for r in replies)


def test_the_statistics_of_200_calls_in_flight_take_a_few_round_trips(redis_url: str) -> None:
    """The store's begin and end through the batch: in-flight counts and latency as before."""
    store = RedisStats(redis_url, prefix="test:batchstats:")

    async def main() -> tuple[int, int, float | None, list[int]]:
        try:
            batch, *_ = store._for_loop()
            counting = CountingBatch(batch.client)
            store._scripts[asyncio.get_running_loop()] = (
                counting,
                *store._scripts[asyncio.get_running_loop()][1:],
            )
            await asyncio.gather(*(store.begin("d", f"t{n}", 60) for n in range(200)))
            _, during = await store.read(["d"])
            await asyncio.gather(*(store.end("d", f"t{n}", 100.0, "ok", 3, 30) for n in range(200)))
            _, after = await store.read(["d"])
            return (
                during["d"].in_flight,
                after["d"].in_flight,
                after["d"].latency_ewma_ms,
                counting.pipelines,
            )
        finally:
            await store.aclose()

    during, after, latency, pipelines = asyncio.run(main())
    assert (during, after) == (200, 0)
    assert latency == pytest.approx(100.0)
    assert sum(pipelines) >= 402 and len(pipelines) <= 8  # 200 + 1 + 200 + 1 calls
