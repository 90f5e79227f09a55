"""One pooled httpx.AsyncClient per event loop, reused by every adapter call in the process.

Why per loop: an AsyncClient's pooled connections belong to the loop that opened them. The
worker runs one long-lived loop per process, so in production there is exactly one client. If
some caller runs coroutines on a fresh loop (asyncio.run per task, tests), reusing the first
client would end in "Event loop is closed" or "attached to a different loop"; keying on the
running loop gives that caller its own client instead, and clients of closed loops are dropped.
Such callers should `await aclose_client()` before their loop ends; otherwise the dropped
client's sockets are reclaimed by the garbage collector (with a ResourceWarning).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from providers.errors import (
    classify_status,
    error_message,
    parse_retry_after,
    redact,
)
from routing.deployments import Deployment, Timeouts
from routing.types import CompletionRequest, ErrorClass, ProviderError, Usage

# The worker keeps hundreds of calls in flight per process; the pool must not be the bottleneck.
# The default transport is aiohttp's (providers/aiohttp_transport.py: constant-time pool, the
# least CPU per call). The fallback (BATCHROUTER_HTTP_CLIENT=httpx) is httpcore's, which does
# work proportional to (open connections x queued requests) on every request and release, so
# one pool of 1,000 connections spends ~12 ms of CPU per call (measured: 1,000 concurrent calls
# took 12-30 s). ShardedTransport therefore spreads requests round-robin over SHARDS small
# pools: the same total capacity, ~1 ms per call.
SHARDS = 64
CONNECTIONS_PER_SHARD = 32
MAX_CONNECTIONS = SHARDS * CONNECTIONS_PER_SHARD  # 2048
KEEPALIVE_EXPIRY_S = 30.0

# Used when a caller has no deployment at hand. httpx's own default (5 s everywhere) would
# abort most LLM calls, which routinely take 10-60 s.
DEFAULT_TIMEOUTS = Timeouts()

_lock = threading.Lock()
_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
# Each client's transport: `send` hands requests to it directly (see there).
_transports: dict[httpx.AsyncClient, httpx.AsyncBaseTransport] = {}
_transport: httpx.AsyncBaseTransport | None = None  # tests: httpx.MockTransport

# The headers every request carries: httpx.AsyncClient's defaults, with our user agent.
# Content decoding is httpx.Response's own, which always handles gzip and deflate.
BASE_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "connection": "keep-alive",
    "user-agent": "batchrouter",
}


def httpx_timeout(timeouts: Timeouts | None) -> httpx.Timeout:
    t = timeouts or DEFAULT_TIMEOUTS
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)


def _timeout_extension(timeouts: Timeouts | None) -> dict[str, float | None]:
    """httpx's per-request "timeout" extension for a deployment's timeouts (cached: a process
    has a handful of deployments, and every call passes here). Read-only by its users."""
    t = timeouts or DEFAULT_TIMEOUTS
    return _timeout_dict(t.connect, t.read, t.write, t.pool)


@functools.lru_cache(maxsize=256)
def _timeout_dict(
    connect: float, read: float, write: float, pool: float
) -> dict[str, float | None]:
    return httpx.Timeout(connect=connect, read=read, write=write, pool=pool).as_dict()


def use_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every new client through `transport` (recorded-body tests); None restores the
    network. Existing clients are forgotten so the next call picks the change up."""
    global _transport
    with _lock:
        _transport = transport
        _clients.clear()
        _transports.clear()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class ShardedTransport(httpx.AsyncBaseTransport):
    """One logical connection pool made of `shards` httpcore pools, used round-robin."""

    def __init__(self, shards: int = SHARDS, per_shard: int = CONNECTIONS_PER_SHARD) -> None:
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        # One TLS context for all shards: building one loads the CA bundle (~25 ms each).
        tls = _tls_context()
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards)]
        self._turn = itertools.count()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._shards[next(self._turn) % len(self._shards)]
        return await shard.handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def default_transport() -> httpx.AsyncBaseTransport:
    """The network transport BATCHROUTER_HTTP_CLIENT names (aiohttp unless it says httpx)."""
    from routing.settings import get_settings

    settings = get_settings()
    if settings.http_client == "httpx":
        return ShardedTransport()
    from providers.aiohttp_transport import AiohttpTransport

    # Never fewer connections than calls a worker may hold open (BATCHROUTER_MAX_IN_FLIGHT).
    limit = max(MAX_CONNECTIONS, settings.max_in_flight)
    return AiohttpTransport(limit=limit, keepalive_expiry=KEEPALIVE_EXPIRY_S, tls=_tls_context())


def _new_client() -> httpx.AsyncClient:
    transport = _transport or default_transport()
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx_timeout(None),
        # Keys are read from the environment by the adapters, never from a proxy/netrc setting.
        trust_env=False,
        follow_redirects=False,
        headers=BASE_HEADERS,
    )
    _transports[client] = transport
    return client


def get_client() -> httpx.AsyncClient:
    """The client bound to the running event loop, created on first use inside that loop."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)  # every call passes here: no lock or sweep when it is there
    if client is not None and not client.is_closed:
        return client
    with _lock:
        for other in [lp for lp in _clients if lp.is_closed()]:
            # Its loop is gone, so it cannot be closed properly; let the GC reclaim the sockets.
            _transports.pop(_clients.pop(other), None)
        client = _clients.get(loop)
        if client is None or client.is_closed:
            client = _new_client()
            _clients[loop] = client
        return client


async def aclose_client() -> None:
    """Close the running loop's client (worker shutdown, test teardown)."""
    loop = asyncio.get_running_loop()
    with _lock:
        client = _clients.pop(loop, None)
        if client is not None:
            _transports.pop(client, None)
    if client is not None:
        await client.aclose()


def client_count() -> int:
    """How many live clients the process holds (one per live loop); for tests and stats."""
    with _lock:
        return sum(1 for loop in _clients if not loop.is_closed())


@dataclass
class RawResponse:
    """An HTTP exchange that got a status line: what adapters parse or classify."""

    status: int
    headers: httpx.Headers
    text: str
    body: Any  # decoded JSON, or None when the body is not JSON
    latency_ms: float
    truncated: bool = False  # the connection dropped before the whole body arrived


def estimated_billed_usage(request: CompletionRequest) -> Usage:
    """What a call that reached the provider but gave us no usage probably cost: the prompt as
    we count it plus the whole output allowance (an upper bound; never $0)."""
    from routing.tokens import count_message_tokens

    return Usage(
        input_tokens=count_message_tokens(request.messages, request.model),
        output_tokens=request.max_output_tokens,
        estimated=True,
    )


async def post_json(
    provider: str,
    url: str,
    *,
    headers: dict[str, str],
    params: dict[str, str],
    payload: dict[str, Any],
    deployment: Deployment,
    request: CompletionRequest,
    secrets: tuple[str | None, ...] = (),
) -> RawResponse:
    """POST `payload` once. Transport failures become ProviderError; any status is returned.

    Billing of transport failures: a connect error, a pool/connect/write timeout or a drop
    before any response means the provider most likely never processed the request (not
    billed); a read timeout means it has the request and keeps generating, so we record an
    estimate.
    """
    return await send(
        provider,
        "POST",
        url,
        headers=headers,
        params=params,
        deployment=deployment,
        secrets=secrets,
        estimate=lambda: estimated_billed_usage(request),
        json=payload,
    )


async def send(
    provider: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    params: dict[str, str] | None,
    deployment: Deployment,
    secrets: tuple[str | None, ...] = (),
    estimate: Callable[[], Usage] | None = None,
    **body: Any,
) -> RawResponse:
    """Send one request (`body`: httpx's json=, content= or files=) on the shared client.

    `estimate` is what a read timeout costs (completion calls); without it (batch endpoints,
    which bill nothing themselves) every transport failure is TRANSIENT and unbilled.
    """
    client = get_client()
    started = time.perf_counter()
    sent: list[float] = []  # when the request's headers went out (the transport's trace)

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if not sent and event.endswith(".send_request_headers.started"):
            sent.append(time.perf_counter())

    def elapsed() -> float:
        """The provider's latency: request sent to response read, without the wait for a
        pooled connection or its connect (issue 19: the worker's own queueing is recorded
        apart, as the attempt's queued_ms). A transport that traces nothing (tests' mock
        transports, a request that never went out) is timed from the start."""
        if sent:
            return (time.perf_counter() - sent[0]) * 1000.0
        return (time.perf_counter() - started) * 1000.0

    def fail(exc: Exception, cls: ErrorClass, billed: bool) -> ProviderError:
        what = type(exc).__name__
        detail = redact(str(exc) or what, secrets)
        if estimate is None:
            cls, billed = ErrorClass.TRANSIENT, False
        return ProviderError(
            cls,
            f"{provider}: {what}: {detail}"[:2000],
            billed_usage=estimate() if billed and estimate is not None else None,
            latency_ms=elapsed(),
        )

    try:
        # Straight to the client's transport, not through AsyncClient.send: its auth, redirect,
        # cookie and URL-merging steps (none of which a provider call uses: no redirects
        # followed, no cookies kept, keys in our headers) were a tenth of a busy worker's event
        # loop (issue 17). The request is what build_request makes: the same default headers,
        # and the timeouts as the extension every httpx transport reads.
        req = httpx.Request(
            method,
            url,
            params=params or None,
            headers={**BASE_HEADERS, **headers},
            extensions={"timeout": _timeout_extension(deployment.timeouts), "trace": trace},
            **body,
        )
        response = await _transports[client].handle_async_request(req)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout) as exc:
        raise fail(exc, ErrorClass.TRANSIENT, billed=False) from None
    except httpx.TimeoutException as exc:  # read timeout: it has the request and is working
        raise fail(exc, ErrorClass.TRANSIENT, billed=True) from None
    except httpx.TransportError as exc:
        # Dropped before any response (often a stale keep-alive connection): most likely
        # never processed, so not billed.
        raise fail(exc, ErrorClass.TRANSIENT, billed=False) from None
    truncated = False
    try:
        raw = await response.aread()
    except httpx.TimeoutException as exc:
        await response.aclose()
        if response.status_code >= 400:
            raise fail(exc, ErrorClass.TRANSIENT, billed=False) from None
        raise fail(exc, ErrorClass.BAD_RESPONSE, billed=True) from None
    except httpx.TransportError:
        # Headers arrived, the body did not finish: a truncated body.
        await response.aclose()
        raw = b""
        truncated = True
    text = raw.decode("utf-8", errors="replace")
    body_json: Any = None
    if text and not truncated:
        try:
            body_json = json.loads(text)
        except ValueError:
            body_json = None
    return RawResponse(
        response.status_code, response.headers, text, body_json, elapsed(), truncated
    )


def status_error(
    provider: str, raw: RawResponse, secrets: tuple[str | None, ...] = ()
) -> ProviderError:
    """The classified ProviderError for a non-2xx response (not billed)."""
    return ProviderError(
        classify_status(raw.status, raw.body, raw.headers),
        error_message(provider, raw.status, raw.body, raw.text[:500], secrets),
        status_code=raw.status,
        retry_after_s=parse_retry_after(raw.headers, raw.body),
        latency_ms=raw.latency_ms,
    )


def raise_for_status(
    provider: str, raw: RawResponse, request: CompletionRequest, secrets: tuple[str | None, ...]
) -> None:
    """Turn a non-2xx response, or a 2xx whose body is unusable JSON, into a ProviderError."""
    if raw.status >= 300:
        raise status_error(provider, raw, secrets)
    if raw.truncated or not isinstance(raw.body, dict):
        what = "truncated body" if raw.truncated else "body is not a JSON object"
        if not raw.text and not raw.truncated:
            what = "empty body"
        sample = redact(raw.text[:200], secrets)
        raise ProviderError(
            ErrorClass.BAD_RESPONSE,
            f"{provider} HTTP {raw.status}: {what}: {sample!r}",
            status_code=raw.status,
            billed_usage=estimated_billed_usage(request),
            latency_ms=raw.latency_ms,
        )


def bad_response(
    provider: str, raw: RawResponse, reason: str, billed: Usage | None
) -> ProviderError:
    """A 200 that is not a usable answer (no choices, empty text, refusal): billed as reported."""
    return ProviderError(
        ErrorClass.BAD_RESPONSE,
        f"{provider} HTTP {raw.status}: {reason}",
        status_code=raw.status,
        billed_usage=billed,
        latency_ms=raw.latency_ms,
    )


def api_key(deployment: Deployment, default_env: str | None) -> str | None:
    """The key from the environment at call time (never cached, logged or put in a message).

    A deployment with no key variable (local vLLM, llama.cpp, Ollama) sends no credentials; one
    that names a variable that is unset fails as a permanent error naming the variable only.
    """
    env = deployment.api_key_env or default_env
    if not env:
        return None
    value = os.environ.get(env)
    if not value:
        raise ProviderError(
            ErrorClass.PERMANENT,
            f"{deployment.provider}: environment variable {env} (the API key) is not set",
        )
    return value


def positive_int(value: Any) -> int:
    """A usage count as the provider sent it, or 0 when it is missing, negative or not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
