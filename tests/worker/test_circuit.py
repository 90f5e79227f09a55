"""A deployment's circuit, in the in-process store and in real Redis (shared by workers).

The same scenarios run on both stores: the Redis one is two Lua scripts on Redis's clock, the
memory one their Python twin for a worker without Redis. Waits are short (a few tenths of a
second) and the scenarios sleep past them, never racing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from routing.policy import circuit_open_s
from worker.stats_store import CircuitRule, MemoryStats, RedisStats

RULE = CircuitRule(after_failures=3, open_s=0.3, open_max_s=0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def stores(request: pytest.FixtureRequest) -> Iterator:
    """(a store factory, pass(seconds)): two calls of the factory are two workers."""
    if request.param == "memory":
        clock = Clock()
        shared = MemoryStats(clock=clock)

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield (lambda: shared), advance
        return
    url = request.getfixturevalue("redis_url")
    yield (lambda: RedisStats(url, prefix="test:circuit:")), asyncio.sleep


def run(*stores, scenario):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        try:
            return await scenario()
        finally:
            for store in stores:
                if isinstance(store, RedisStats):
                    await store.aclose()

    return asyncio.run(main())


async def fail(store, token: str = "t", outcome: str = "transient"):  # type: ignore[no-untyped-def]
    return await store.end("a", token, None, outcome, 100, 30, RULE)


async def open_circuit(store, advance=None, probe: str | None = None):  # type: ignore[no-untyped-def]
    """Open a's circuit (three refused connections); with `advance`, wait until it is
    half-open; with `probe`, start the probe call under that token."""
    for _ in range(3):
        ended = await fail(store)
    if advance is not None:
        await advance(0.35)
    if probe is not None:
        return await store.begin("a", probe, 60)
    return ended


def test_transient_failures_in_a_row_open_the_circuit_for_every_worker(stores) -> None:
    make, _ = stores
    one, two = make(), make()

    async def scenario():  # type: ignore[no-untyped-def]
        events = [(await fail(one)).circuit for _ in range(2)]
        events.append((await fail(one, outcome="ok")).circuit)  # an answer resets the count
        events += [(await fail(two)).circuit for _ in range(2)]
        events.append((await fail(one, outcome="fail")).circuit)  # a 429: the server is up
        events += [(await fail(one)).circuit for _ in range(2)]
        before = await two.begin("a", "c1", 60)
        third = await fail(two)
        opened = await one.begin("a", "c2", 60)  # another worker
        return events, before, third, opened

    events, before, third, opened = run(one, two, scenario=scenario)
    assert events == [""] * 8
    assert before.verdict == "ok"
    assert third.circuit == "opened" and third.open_for_s == RULE.open_s
    assert opened.refused and opened.verdict == "open"
    assert opened.down_since == pytest.approx(third.down_since)
    assert opened.until - opened.now == pytest.approx(RULE.open_s, abs=0.05)


def test_after_the_wait_one_probe_tests_it_and_a_failed_probe_doubles_the_wait(stores) -> None:
    make, advance = stores
    store = make()

    async def scenario():  # type: ignore[no-untyped-def]
        opened = await open_circuit(store)
        await advance(0.35)
        probe = await store.begin("a", "probe-1", 60)
        others = [await store.begin("a", f"c{n}", 60) for n in range(3)]
        reopened = await fail(store, "probe-1")
        during = await store.begin("a", "c9", 60)
        await advance(0.55)  # past 0.5 s: the doubled wait (0.6) is capped at open_max_s
        probe2 = await store.begin("a", "probe-2", 60)
        again = await fail(store, "probe-2")
        return opened, probe, others, reopened, during, probe2, again

    opened, probe, others, reopened, during, probe2, again = run(store, scenario=scenario)
    assert probe.verdict == "probe"
    assert [o.verdict for o in others] == ["probing"] * 3  # the queue does not flood it
    assert reopened.circuit == "reopened"
    assert reopened.open_for_s == circuit_open_s(2, RULE.open_s, RULE.open_max_s) == 0.5
    assert during.verdict == "open"
    assert probe2.verdict == "probe" and again.open_for_s == 0.5
    assert reopened.down_since == again.down_since == opened.down_since  # one outage


@pytest.mark.parametrize("answer", ["ok", "fail", "other"])
def test_a_probe_that_gets_any_answer_closes_the_circuit(stores, answer: str) -> None:
    make, advance = stores
    store = make()

    async def scenario():  # type: ignore[no-untyped-def]
        await open_circuit(store, advance, probe="probe")
        closed = await fail(store, "probe", outcome=answer)
        after = await store.begin("a", "next", 60)
        _, stats = await store.read(["a"])
        return closed, after, stats

    closed, after, stats = run(store, scenario=scenario)
    assert closed.circuit == "closed"
    assert after.verdict == "ok"
    assert stats["a"].in_flight == 1  # the next call counts in flight; refused ones did not


def test_a_late_answer_from_before_the_outage_does_not_close_it(stores) -> None:
    make, _ = stores
    store = make()

    async def scenario():  # type: ignore[no-untyped-def]
        await open_circuit(store)
        late = await fail(store, "started-before", outcome="ok")
        still = await store.begin("a", "c", 60)
        return late, still

    late, still = run(store, scenario=scenario)
    assert late.circuit == "" and still.verdict == "open"


def test_a_probe_refused_by_a_later_layer_frees_its_lease(stores) -> None:
    make, advance = stores
    store = make()

    async def scenario():  # type: ignore[no-untyped-def]
        await open_circuit(store, advance, probe="probe")
        await store.end("a", "probe", None, "none", 1, 0)  # DeploymentStats.release
        return await store.begin("a", "next", 60)

    assert run(store, scenario=scenario).verdict == "probe"


def test_an_open_circuit_orders_its_deployment_last(stores) -> None:
    make, _ = stores
    store = make()

    async def scenario():  # type: ignore[no-untyped-def]
        await open_circuit(store)
        return await store.read(["a", "b"])

    now, stats = run(store, scenario=scenario)
    assert stats["a"].cooling(now) and not stats["b"].cooling(now)
