"""The aiohttp-backed transport (the default) and the sharded httpx one (the fallback, named by
BATCHROUTER_HTTP_CLIENT=httpx), side by side against the real fake server on loopback: the
same statuses, the same error classes and billing, large bodies, a few hundred calls at once;
then what only a hand-written server shows (one content decoding, headers, keep-alive)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from providers import http
from providers.aiohttp_transport import AiohttpTransport, client_timeout, to_httpx_error
from providers.fake_server import (
    AnswerConfig,
    FakeServerConfig,
    LatencyConfig,
    free_port,
    running_fake_server,
)
from providers.openai_compat import OpenAICompatProvider
from routing.deployments import Deployment, Timeouts
from routing.settings import get_settings
from routing.types import CompletionRequest, ErrorClass, Message, ProviderError
from tests.helpers.net import run_closing_client as run

CLIENTS = ["aiohttp", "httpx"]


@pytest.fixture(params=CLIENTS)
def client_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test once per HTTP client, chosen the way an operator would: the setting."""
    monkeypatch.setenv("BATCHROUTER_HTTP_CLIENT", request.param)
    get_settings.cache_clear()
    http.use_transport(None)  # forget clients built under the other setting
    yield request.param
    monkeypatch.delenv("BATCHROUTER_HTTP_CLIENT")
    get_settings.cache_clear()
    http.use_transport(None)


def _request(text: str = "hello there", max_output: int = 64) -> CompletionRequest:
    return CompletionRequest(
        deployment="d",
        model="gpt-4o-mini",
        messages=[Message(role="user", content=text)],
        max_output_tokens=max_output,
    )


def _deployment(url: str, **kw: Any) -> Deployment:
    return Deployment(provider="openai", model="gpt-4o-mini", api_base=f"{url}/v1", **kw)


def _fail(url: str, kind: str | None = None, **kw: Any) -> ProviderError:
    if kind is not None:
        kw["extra_headers"] = {"x-fake-error": kind}
    with pytest.raises(ProviderError) as info:
        run(OpenAICompatProvider().complete(_request(), _deployment(url, **kw)))
    return info.value


def test_the_setting_picks_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHROUTER_HTTP_CLIENT", raising=False)
    get_settings.cache_clear()
    assert isinstance(http.default_transport(), AiohttpTransport)
    monkeypatch.setenv("BATCHROUTER_HTTP_CLIENT", "httpx")
    get_settings.cache_clear()
    assert isinstance(http.default_transport(), http.ShardedTransport)
    get_settings.cache_clear()


# kind -> (status, class, billed): a sample of each path through `send` and raise_for_status.
KINDS = {
    "rate_limit": (429, ErrorClass.RATE_LIMITED, False),
    "server_error": (500, ErrorClass.TRANSIENT, False),
    "overloaded": (529, ErrorClass.TRANSIENT, False),
    "bad_request": (400, ErrorClass.PERMANENT, False),
    "auth": (401, ErrorClass.PERMANENT, False),
    "malformed_json": (200, ErrorClass.BAD_RESPONSE, True),
    "truncated_body": (200, ErrorClass.BAD_RESPONSE, True),  # the connection drops mid-body
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_statuses_classified_alike(fake_url: str, client_kind: str, kind: str) -> None:
    status, cls, billed = KINDS[kind]
    error = _fail(fake_url, kind)
    assert (error.status_code, error.error_class) == (status, cls), error.message
    assert (error.billed_usage is not None) is billed
    if kind == "rate_limit":
        assert error.retry_after_s == pytest.approx(1.0)  # headers came through


def test_success_with_usage(fake_url: str, client_kind: str) -> None:
    result = run(
        OpenAICompatProvider().complete(_request("Summarize: a b c."), _deployment(fake_url))
    )
    assert result.text == "Summarize: a b c." and result.request_id
    assert result.usage.input_tokens > 0 and not result.usage.estimated


def test_connection_refused_is_transient_and_not_billed(client_kind: str) -> None:
    error = _fail(f"http://127.0.0.1:{free_port()}", timeouts=Timeouts(connect=1.0))
    assert error.error_class is ErrorClass.TRANSIENT and error.billed_usage is None
    assert "ConnectError" in error.message


def test_read_timeout_is_transient_and_estimated(fake_url: str, client_kind: str) -> None:
    error = _fail(fake_url, "hang", timeouts=Timeouts(read=0.3))
    assert error.error_class is ErrorClass.TRANSIENT and "ReadTimeout" in error.message
    assert error.billed_usage is not None and error.billed_usage.estimated
    assert error.billed_usage.output_tokens == 64  # the whole output allowance


def test_waiting_for_a_connection_is_a_pool_timeout_not_billed(fake_url: str) -> None:
    """One connection, held by a hanging call: the second call's wait ends as PoolTimeout."""
    dep = _deployment(fake_url, timeouts=Timeouts(pool=0.3, read=5))
    hanging = _deployment(
        fake_url, extra_headers={"x-fake-error": "hang"}, timeouts=Timeouts(read=2)
    )
    provider = OpenAICompatProvider()

    async def two() -> list[Any]:
        first = asyncio.ensure_future(provider.complete(_request(), hanging))
        await asyncio.sleep(0.2)  # the hanging call holds the only connection
        second = await asyncio.gather(provider.complete(_request(), dep), return_exceptions=True)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        return second

    http.use_transport(AiohttpTransport(limit=1, keepalive_expiry=5, tls=http._tls_context()))
    try:
        [error] = run(two())
    finally:
        http.use_transport(None)
    assert isinstance(error, ProviderError), error
    assert error.error_class is ErrorClass.TRANSIENT and error.billed_usage is None
    assert "PoolTimeout" in error.message


def test_large_bodies_both_ways(client_kind: str) -> None:
    """~600 KB out and back (the fake server echoes the prompt): no size limit in the way."""
    config = FakeServerConfig(answer=AnswerConfig(mode="echo"), context_window=10_000_000)
    text = " ".join(f"w{i % 9973}" for i in range(100_000))
    with running_fake_server(config) as url:
        dep = _deployment(url, max_output_tokens=1_000_000)
        result = run(OpenAICompatProvider().complete(_request(text, 1_000_000), dep))
    same = result.text == text  # not compared in the assert: a failure would print 600 KB
    assert same, (len(result.text), len(text))


def test_a_few_hundred_calls_at_once(client_kind: str) -> None:
    config = FakeServerConfig(latency=LatencyConfig(ms=500), answer=AnswerConfig(mode="echo"))
    provider = OpenAICompatProvider()
    with running_fake_server(config) as url:
        dep = _deployment(url)

        async def many() -> tuple[list[str], dict]:
            texts = await asyncio.gather(
                *(provider.complete(_request(f"item {i}"), dep) for i in range(300))
            )
            stats = (await http.get_client().get(f"{url}/_stats")).json()
            return [t.text for t in texts], stats

        texts, stats = run(many())
    assert texts == [f"item {i}" for i in range(300)]
    assert stats["peak_in_flight"] >= 300 and stats["by_status"] == {"200": 300}


def test_latency_is_the_providers_not_the_wait_for_a_connection() -> None:
    """Issue 19 through aiohttp: the trace marks when the request went out, after the wait."""
    config = FakeServerConfig(latency=LatencyConfig(ms=300))
    provider = OpenAICompatProvider()
    with running_fake_server(config) as url:
        dep = _deployment(url)

        async def timed(i: int) -> tuple[float, float]:
            began = time.perf_counter()
            result = await provider.complete(_request(f"item {i}"), dep)
            return (time.perf_counter() - began) * 1000, result.latency_ms

        async def two() -> list[tuple[float, float]]:
            return list(await asyncio.gather(timed(0), timed(1)))

        http.use_transport(AiohttpTransport(limit=1, keepalive_expiry=5, tls=http._tls_context()))
        try:
            calls = run(two())
        finally:
            http.use_transport(None)
    for _wall, latency in calls:
        assert latency >= 300
    wall, latency = max(calls)
    assert wall - latency >= 250


# --- What the fake server cannot show: a hand-written HTTP/1.1 server -------------------------


async def _raw_server(
    answer: Callable[[bytes], bytes], seen: list[bytes], connections: list[int]
) -> asyncio.Server:
    """Answers each request with `answer(request)`; records requests and connections."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                seen.append(head + await reader.readexactly(length))
                writer.write(answer(seen[-1]))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(on_connect, "127.0.0.1", 0)


def test_gzip_decoded_once_headers_both_ways_and_keep_alive() -> None:
    body = gzip.compress(b'{"ok": true}')
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    seen: list[bytes] = []
    connections: list[int] = []

    async def main() -> list[httpx.Response]:
        server = await _raw_server(lambda _request: answer, seen, connections)
        port = server.sockets[0].getsockname()[1]
        transport = AiohttpTransport(limit=10, keepalive_expiry=5, tls=http._tls_context())
        try:
            async with httpx.AsyncClient(transport=transport) as client:
                return [
                    await client.post(
                        f"http://127.0.0.1:{port}/v1/x?q=a%2Fb",
                        json={"n": i},
                        headers={"x-api-key": "k"},
                    )
                    for i in range(3)
                ]
        finally:
            server.close()

    responses = asyncio.run(main())
    assert [r.json() for r in responses] == [{"ok": True}] * 3  # decoded by httpx, once
    assert responses[0].headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert responses[0].http_version == "HTTP/1.1" and responses[0].reason_phrase == "OK"
    assert len(connections) == 1  # one kept-alive connection for the three calls
    first = seen[0].lower()
    assert first.startswith(b"post /v1/x?q=a%2fb http/1.1")  # the URL as httpx encoded it
    assert b"x-api-key: k" in first and b"content-type: application/json" in first
    assert seen[0].endswith(b'{"n":0}')


def test_a_call_cancelled_mid_body_gives_its_connection_back() -> None:
    """A worker that stops cancels calls mid-body; httpx then never closes those responses, so
    the transport must: with one connection slot, the next call gets it, not a PoolTimeout."""
    stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"  # 93 bytes never come
    whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def answer(request: bytes) -> bytes:
        return stalled if request.startswith(b"GET /stall") else whole

    async def main() -> str:
        server = await _raw_server(answer, [], [])
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        transport = AiohttpTransport(limit=1, keepalive_expiry=5, tls=http._tls_context())
        try:
            async with httpx.AsyncClient(
                transport=transport, timeout=httpx.Timeout(5, pool=1)
            ) as c:
                response = await c.send(c.build_request("GET", f"{base}/stall"), stream=True)
                reading = asyncio.ensure_future(response.aread())
                await asyncio.sleep(0.3)
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
                return (await c.get(f"{base}/ok")).text
        finally:
            server.close()

    assert asyncio.run(main()) == "ok"


# --- The mappings themselves ------------------------------------------------------------------


def test_timeouts_map_to_aiohttps() -> None:
    t = client_timeout(5.0, 60.0)
    assert (t.total, t.connect, t.sock_connect, t.sock_read) == (None, 5.0, 5.0, 60.0)
    unbounded = client_timeout(None, None)
    assert (unbounded.connect, unbounded.sock_connect, unbounded.sock_read) == (None, None, None)


def test_errors_map_to_the_httpx_classes_send_bills_by() -> None:
    request = httpx.Request("POST", "http://x/")
    key = aiohttp.client_reqrep.ConnectionKey("x", 80, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))
    cases: list[tuple[BaseException, type[Exception]]] = [
        (aiohttp.ConnectionTimeoutError("t"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("t"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (refused, httpx.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("short"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
        (aiohttp.InvalidURL("x"), httpx.UnsupportedProtocol),
    ]
    for exc, expected in cases:
        mapped = to_httpx_error(exc, request)
        assert type(mapped) is expected, (exc, mapped)
        assert mapped.request is request
