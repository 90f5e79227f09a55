"""Deployment statistics shared through real Redis: in-flight counts, latency EWMA, cooldowns.

The same bookkeeping runs in process memory when the broker is not Redis; both stores are
tested by the same cases. Sharing is tested with separate clients on separate event loops
and with a second OS process, as two workers would be.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from ledger.outcomes import ClaimedItem
from providers import base
from routing.config import RoutingConfig, parse_config
from routing.deployments import Deployment
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    ProviderError,
    Usage,
)
from worker.attempt import run_item
from worker.deployment_stats import (
    DeploymentStats,
    MemoryStats,
    RedisStats,
    StatsStore,
    stats_redis_url,
)

CONFIG = """\
deployments:
  a: {provider: stats_scripted, model: gpt-4o-mini, prices: {input: 1, output: 2}}
  b: {provider: stats_scripted, model: gpt-4o-mini, prices: {input: 3, output: 4}}
tiers:
  - {name: t0, deployments: [a, b], strategy: STRATEGY, cooldown_after_failures: 3, cooldown_s: 30}
task_types:
  tickets:
    ladder: [t0]
    prompt: "{text}"
    checks: [{kind: label, labels: [billing]}]
    max_attempts: 10
    transient_retries: 2
"""


def config(strategy: str = "ordered") -> RoutingConfig:
    return parse_config(CONFIG.replace("STRATEGY", strategy))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> Iterator:
    if request.param == "memory":
        shared = MemoryStats()
        yield lambda: shared
        return
    url = request.getfixturevalue("redis_url")
    yield lambda: RedisStats(url, prefix="test:dep:")


def arun(store: StatsStore, coro_fn):  # type: ignore[no-untyped-def]
    """Run on a fresh loop, as a separate worker would, closing its Redis client after."""

    async def main():  # type: ignore[no-untyped-def]
        try:
            return await coro_fn()
        finally:
            if isinstance(store, RedisStats):
                await store.aclose()

    return asyncio.run(main())


def test_calls_in_flight_are_counted_and_a_dead_workers_calls_expire(make_store) -> None:
    store = make_store()

    async def scenario():  # type: ignore[no-untyped-def]
        for token in ("t1", "t2", "t3"):
            await store.begin("a", token, 60)
        await store.begin("a", "dead-worker", 0.3)  # never ends: its worker died
        _, during = await store.read(["a", "b"])
        await store.end("a", "t1", None, "ok", 3, 30)
        await asyncio.sleep(0.5)
        _, after = await store.read(["a"])
        return during, after

    during, after = arun(store, scenario)
    assert (during["a"].in_flight, during["b"].in_flight) == (4, 0)
    assert after["a"].in_flight == 2


def test_latency_is_an_ewma_of_answered_calls(make_store) -> None:
    store = make_store()

    async def scenario():  # type: ignore[no-untyped-def]
        await store.end("a", "x", 100.0, "ok", 3, 30)
        await store.end("a", "y", 200.0, "ok", 3, 30)
        await store.end("a", "z", None, "fail", 3, 30)  # an error carries no latency sample
        return (await store.read(["a", "b"]))[1]

    stats = arun(store, scenario)
    assert stats["a"].latency_ewma_ms == pytest.approx(100 + 0.3 * (200 - 100))
    assert stats["b"].latency_ewma_ms is None


def test_consecutive_failures_cool_a_deployment_and_a_success_resets_them(make_store) -> None:
    store = make_store()

    async def scenario():  # type: ignore[no-untyped-def]
        cooled = [(await store.end("a", "t", None, "fail", 3, 30)).cooled for _ in range(2)]
        cooled.append((await store.end("a", "t", None, "ok", 3, 30)).cooled)  # resets the count
        cooled += [(await store.end("a", "t", None, "fail", 3, 30)).cooled for _ in range(2)]
        cooled.append((await store.end("a", "t", None, "other", 3, 30)).cooled)  # a 400: nothing
        now, before = await store.read(["a"])
        cooled.append((await store.end("a", "t", None, "fail", 3, 30)).cooled)
        now, after = await store.read(["a"])
        return cooled, before, after, now

    cooled, before, after, now = arun(store, scenario)
    assert cooled == [False, False, False, False, False, False, True]
    assert not before["a"].cooling(now)
    assert after["a"].cooling(now) and after["a"].cooling_until == pytest.approx(now + 30, abs=1)


@pytest.mark.redis
def test_a_cooldown_is_seen_by_another_client_and_another_process(redis_url: str) -> None:
    cfg = config()
    worker_a = DeploymentStats(RedisStats(redis_url, prefix="test:dep:"))
    worker_b = DeploymentStats(RedisStats(redis_url, prefix="test:dep:"))
    assert arun(worker_b.store, lambda: worker_b.order(cfg, "t0", ["a", "b"], 10)) == ["a", "b"]
    # Another OS process records three failures of `a` in a row.
    script = (
        "import asyncio, sys\n"
        "from worker.deployment_stats import RedisStats\n"
        "store = RedisStats(sys.argv[1], prefix='test:dep:')\n"
        "async def main():\n"
        "    for _ in range(3):\n"
        "        await store.end('a', 't', None, 'fail', 3, 30)\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, redis_url], check=True, timeout=60)
    assert arun(worker_a.store, lambda: worker_a.order(cfg, "t0", ["a", "b"], 10)) == ["b", "a"]
    assert arun(worker_b.store, lambda: worker_b.order(cfg, "t0", ["a", "b"], 10)) == ["b", "a"]


@pytest.mark.redis
def test_least_busy_and_lowest_latency_read_what_other_workers_do(redis_url: str) -> None:
    other = RedisStats(redis_url, prefix="test:dep:")

    async def busy_a_slow_b():  # type: ignore[no-untyped-def]
        await other.begin("a", "c1", 60)
        await other.begin("a", "c2", 60)
        await other.end("b", "c0", 900.0, "ok", 3, 30)
        await other.end("a", "c3", 100.0, "ok", 3, 30)

    arun(other, busy_a_slow_b)
    me = DeploymentStats(RedisStats(redis_url, prefix="test:dep:"))
    order = lambda cfg: arun(me.store, lambda: me.order(cfg, "t0", ["a", "b"], 10))  # noqa: E731
    assert order(config("least_busy")) == ["b", "a"]
    assert order(config("lowest_latency")) == ["a", "b"]


class Scripted:
    def __init__(self) -> None:
        self.scripts: dict[str, list[str | ProviderError]] = {}
        self.calls: list[str] = []

    async def complete(self, request: CompletionRequest, deployment: Deployment):  # type: ignore[no-untyped-def]
        self.calls.append(request.deployment)
        step = self.scripts[request.deployment].pop(0)
        if isinstance(step, ProviderError):
            raise step
        return CompletionResult(
            text=step, usage=Usage(input_tokens=10, output_tokens=1), latency_ms=250.0
        )


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    scripted = Scripted()
    monkeypatch.setitem(base._INSTANCES, "stats_scripted", scripted)
    yield scripted


def item(item_id: int) -> ClaimedItem:
    return ClaimedItem(
        id=item_id, batch_id="b", external_id=str(item_id), text="charged", expected=None,
        fields={}, tier="t0", attempts=0, cost_usd=0.0, last_output=None, last_error=None,
    )  # fmt: skip


@pytest.mark.redis
def test_workers_cool_a_failing_deployment_down_and_fall_back(redis_url: str, provider) -> None:
    cfg = config()
    fail = ProviderError(ErrorClass.TRANSIENT, "HTTP 503", status_code=503)
    provider.scripts = {"a": [fail, fail, fail], "b": ["billing", "billing"]}
    one = DeploymentStats(RedisStats(redis_url, prefix="test:dep:"))
    two = DeploymentStats(RedisStats(redis_url, prefix="test:dep:"))

    async def no_sleep(_: float) -> None:
        return None

    def run(worker: DeploymentStats, claimed: ClaimedItem):  # type: ignore[no-untyped-def]
        return arun(
            worker.store,
            lambda: run_item(claimed, cfg, "tickets", middleware=[worker], sleep=no_sleep),
        )

    first = run(one, item(1))  # a fails 3 times (2 retries), b answers
    assert first.next_state == "succeeded" and provider.calls == ["a", "a", "a", "b"]
    second = run(two, item(2))  # the other worker tries b first: a cools down
    assert second.next_state == "succeeded" and provider.calls[4:] == ["b"]
    _, stats = arun(two.store, lambda: two.store.read(["a", "b"]))
    assert stats["a"].cooling_until > time.time() + 20
    assert stats["b"].latency_ewma_ms == pytest.approx(250.0)
    assert stats["a"].in_flight == stats["b"].in_flight == 0


def test_an_unreachable_redis_never_holds_a_call_up(provider) -> None:
    worker = DeploymentStats(RedisStats("redis://127.0.0.1:1/0", prefix="test:dep:"))
    provider.scripts = {"a": ["billing"]}
    started = time.monotonic()
    outcome = arun(
        worker.store, lambda: run_item(item(1), config(), "tickets", middleware=[worker])
    )
    assert outcome.next_state == "succeeded" and provider.calls == ["a"]
    assert time.monotonic() - started < 5


def test_the_stats_use_the_brokers_redis_or_process_memory(monkeypatch) -> None:
    from routing.settings import get_settings

    monkeypatch.delenv("BATCHROUTER_REDIS_URL", raising=False)
    monkeypatch.setenv("BATCHROUTER_BROKER_URL", "redis://example:6379/3")
    get_settings.cache_clear()
    try:
        assert stats_redis_url() == "redis://example:6379/3"
        monkeypatch.setenv("BATCHROUTER_REDIS_URL", "redis://stats:6379/1")
        assert stats_redis_url() == "redis://stats:6379/1"
        monkeypatch.delenv("BATCHROUTER_REDIS_URL")
        monkeypatch.setenv("BATCHROUTER_BROKER_URL", "filesystem://")
        get_settings.cache_clear()
        assert DeploymentStats.from_settings().backend == "in-process"
    finally:
        get_settings.cache_clear()


def skipped_metric(op: str, reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "batchrouter_deployment_stats_skipped_total", {"op": op, "reason": reason}
    )
    return value or 0.0


def busy_worker(store: RedisStats, calls: int) -> DeploymentStats:
    """`calls` calls begin and end their statistics at once on one loop that spends 0.2 s of
    every turn on other work (a worker's loop busy with hundreds of calls), so a connection
    stays held for turns after its script ran. Before issue 19 a call waited at most 2 s for
    one of 16 connections."""
    stats = DeploymentStats(store)
    done = asyncio.Event()

    async def one(n: int) -> None:
        await stats._guarded("begin", store.begin, "a", f"call-{n}", 60)
        await stats._guarded("record", store.end, "a", f"call-{n}", 300.0, "ok", 3, 30)

    async def hog() -> None:
        while not done.is_set():
            await asyncio.sleep(0)
            time.sleep(0.2)  # the loop answers nobody meanwhile

    async def scenario() -> None:
        busy = asyncio.ensure_future(hog())
        await asyncio.gather(*(one(n) for n in range(calls)))
        done.set()
        await busy

    arun(store, scenario)
    return stats


@pytest.mark.redis
def test_more_concurrent_calls_than_the_old_pool_skip_no_statistics(redis_url: str) -> None:
    calls = 200  # in flight at once in one process, against the old pool of 16
    ops = [(op, reason) for op in ("begin", "record") for reason in ("error", "redis_down")]
    before = {key: skipped_metric(*key) for key in ops}
    store = RedisStats(redis_url, prefix="test:dep:")  # sized from BATCHROUTER_MAX_IN_FLIGHT
    assert store.max_connections >= 500
    stats = busy_worker(store, calls)
    assert stats.skipped == {}
    assert {key: skipped_metric(*key) - before[key] for key in ops} == dict.fromkeys(ops, 0.0)
    _, after = arun(store, lambda: store.read(["a"]))
    assert after["a"].in_flight == 0 and after["a"].latency_ewma_ms == pytest.approx(300.0)


@pytest.mark.redis
def test_a_statistics_update_that_is_skipped_is_counted_in_the_metric(redis_url: str) -> None:
    """A Redis nobody answers on (down, or cut off): every update of 200 calls in flight is
    skipped, the first ones as errors, the rest while the store rests, and each is counted."""
    from tests.helpers.net import free_port

    ops = [(op, reason) for op in ("begin", "record") for reason in ("error", "redis_down")]
    before = {key: skipped_metric(*key) for key in ops}
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    stats = busy_worker(RedisStats(nobody, prefix="test:dep:", max_connections=16), 200)
    assert sum(stats.skipped.values()) == 400  # a begin and a record per call
    assert stats.skipped.get(("begin", "error"), 0) > 0
    counted = {key: skipped_metric(*key) - before[key] for key in ops}
    assert counted == {key: float(stats.skipped.get(key, 0)) for key in ops}
