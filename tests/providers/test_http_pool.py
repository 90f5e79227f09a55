"""The pooled client: one per event loop, reused, safe under a worker's long-lived loop and
under repeated asyncio.run; and 1,000 calls in flight against the fake server at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import warnings

import httpx
import pytest

from providers import http
from providers.fake_server import FakeServerConfig, LatencyConfig, running_fake_server
from providers.openai_compat import OpenAICompatProvider
from routing.deployments import Deployment, Timeouts
from routing.types import CompletionRequest, Message


def _request(i: int = 0) -> CompletionRequest:
    return CompletionRequest(
        deployment="d", model="gpt-4o-mini", messages=[Message(role="user", content=f"item {i}")]
    )


def test_a_request_carries_its_deployments_timeouts_and_the_default_headers() -> None:
    """`send` hands the request straight to the transport (not through AsyncClient.send): what
    build_request would add must still be there, or a transport would use httpx's 5 s."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    http.use_transport(httpx.MockTransport(handler))
    try:
        for timeouts in (None, Timeouts(connect=1, read=300)):
            dep = Deployment(provider="openai", model="gpt-4o", timeouts=timeouts or Timeouts())
            raw = asyncio.run(
                http.send(
                    "openai", "POST", "https://api.example.com/v1/chat/completions",
                    headers={"authorization": "Bearer k"}, params={"api-version": "1"},
                    deployment=dep, json={"a": 1},
                )
            )  # fmt: skip
            assert raw.status == 200 and raw.body == {"ok": True}
    finally:
        http.use_transport(None)
    default, custom = (request.extensions["timeout"] for request in seen)
    assert default == {"connect": 5.0, "read": 120.0, "write": 10.0, "pool": 10.0}
    assert (custom["connect"], custom["read"]) == (1, 300)
    request = seen[0]
    assert str(request.url) == "https://api.example.com/v1/chat/completions?api-version=1"
    assert request.headers["user-agent"] == "batchrouter"
    assert request.headers["host"] == "api.example.com"
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert request.headers["content-type"] == "application/json"
    assert request.content == b'{"a":1}'
    assert "trace" in request.extensions  # the provider's latency is timed from it


# Clients of loops closed by asyncio.run cannot be closed any more; their sockets are reclaimed
# by the GC, which may emit ResourceWarnings. That is the documented cost of loop-per-call use.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_client_per_loop_and_no_closed_loop_errors(fake_url: str) -> None:
    dep = Deployment(provider="openai", model="gpt-4o-mini", api_base=f"{fake_url}/v1")
    provider = OpenAICompatProvider()
    seen: list[httpx.AsyncClient] = []

    async def call() -> str:
        result = await provider.complete(_request(), dep)
        seen.append(http.get_client())
        return result.text

    # Like a worker: one long-lived loop in a background thread, coroutines submitted to it.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            future = asyncio.run_coroutine_threadsafe(call(), loop)
            assert future.result(10) == "item 0"
        assert seen[0] is seen[1] is seen[2]  # pooled and reused
    finally:
        asyncio.run_coroutine_threadsafe(http.aclose_client(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    # Like code that runs asyncio.run per task: each loop gets its own client, nothing breaks.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Event loop is closed" would surface here
        assert asyncio.run(call()) == "item 0"
        assert asyncio.run(call()) == "item 0"
    assert seen[3] is not seen[4] and seen[3] is not seen[0]
    assert http.client_count() <= 1  # clients of closed loops are dropped


def test_thousand_requests_in_flight() -> None:
    config = FakeServerConfig(latency=LatencyConfig(ms=1500))
    with running_fake_server(config) as url:
        dep = Deployment(provider="openai", model="gpt-4o-mini", api_base=f"{url}/v1")
        provider = OpenAICompatProvider()

        async def many() -> tuple[list[str], dict]:
            async def one(i: int) -> str:
                return (await provider.complete(_request(i), dep)).text

            try:
                texts = await asyncio.gather(*(one(i) for i in range(1000)))
                stats = (await http.get_client().get(f"{url}/_stats")).json()
            finally:
                await http.aclose_client()
            return texts, stats

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop and thread
            texts, stats = pool.submit(asyncio.run, many()).result(60)
        elapsed = time.perf_counter() - started
        assert texts == [f"item {i}" for i in range(1000)]
        assert stats["peak_in_flight"] >= 1000, stats
        assert stats["by_status"] == {"200": 1000}
        assert elapsed < 15, elapsed  # all held open together, not queued


def test_latency_is_the_providers_not_the_wait_for_a_pooled_connection() -> None:
    """Issue 19: a call that waits inside the worker for a connection records the provider's
    latency (request sent to response) only; the worker records the wait apart."""
    config = FakeServerConfig(latency=LatencyConfig(ms=300))
    with running_fake_server(config) as url:
        dep = Deployment(provider="openai", model="gpt-4o-mini", api_base=f"{url}/v1")
        provider = OpenAICompatProvider()

        async def timed(i: int) -> tuple[float, float]:
            began = time.perf_counter()
            result = await provider.complete(_request(i), dep)
            return (time.perf_counter() - began) * 1000, result.latency_ms

        async def two() -> list[tuple[float, float]]:
            try:  # one connection: the second call waits for the first's 300 ms answer
                return await asyncio.gather(timed(0), timed(1))
            finally:
                await http.aclose_client()

        http.use_transport(http.ShardedTransport(shards=1, per_shard=1))
        try:
            calls = asyncio.run(two())
        finally:
            http.use_transport(None)
    waited = max(calls)  # the call with the longer wall time
    for _wall, latency in calls:
        assert latency >= 300  # the server's own latency is in it
    wall, latency = waited
    assert wall - latency >= 250  # the ~300 ms spent waiting for the connection is not
