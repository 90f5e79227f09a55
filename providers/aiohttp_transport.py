"""An httpx transport that sends through aiohttp: httpx's API for the adapters, aiohttp's pool.

Why: at a thousand calls open in one process, httpcore's pool spends milliseconds of CPU per
call even sharded (providers/http.py), while aiohttp's connector hands a keep-alive connection
out in constant time. Measured by issue 17 at 1 s latency and 1,000 concurrent calls: bare
aiohttp 879 calls/s, bare httpx 33 calls/s. Everything above the transport stays httpx: request
building, headers, content decoding, the response object the adapters parse, MockTransport in
tests. Only the wire moves.

What the rest of the project relies on, kept here:
- httpx's exception classes. providers/http.py's `send` bills by them (a connect failure or a
  pool/connect timeout: never processed, not billed; a read timeout: the provider has the
  request, an estimate is billed), so every aiohttp or socket error is translated below.
- httpx's per-request timeouts (`request.extensions["timeout"]`: connect, read, write, pool).
  connect and read become aiohttp's `sock_connect`/`connect` and `sock_read` (each read); pool
  is the wait for one of the transport's connection slots (AiohttpTransport). aiohttp has no
  write timeout: a chat request body fits the socket's buffer, and a peer that stops reading a
  large upload ends in the read timeout instead (batch uploads bill nothing either way).
- the `trace` extension's "send_request_headers.started" event, which `send` uses to time the
  provider's latency without the wait for a connection (issue 19).
- TLS verification with the same SSLContext as the httpx transport; no proxy or netrc from the
  environment (trust_env=False); keep-alive; no redirects; no cookie jar (httpx keeps its own).
- Content decoding stays httpx's (auto_decompress=False): decoding twice would corrupt bodies.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

# Request headers aiohttp manages itself: framing and the connection's life.
_SKIP_HEADERS = frozenset({b"connection", b"transfer-encoding", b"keep-alive"})
_HTTP11 = b"HTTP/1.1"


async def _on_headers_sent(_s: Any, ctx: Any, _p: Any) -> None:
    call = ctx.trace_request_ctx
    if call is not None:
        trace, request = call
        # The event name httpcore uses; `send` only looks at the suffix.
        await trace("http11.send_request_headers.started", {"request": request})


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    return config


@functools.lru_cache(maxsize=256)
def client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    """httpx's connect and read timeouts as aiohttp's (cached: a process has a handful of
    deployments). The pool timeout is the transport's own wait (AiohttpTransport)."""
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


def to_httpx_error(exc: BaseException, request: httpx.Request) -> Exception:
    """The httpx exception providers/http.py classifies, for an aiohttp or socket failure.

    Order matters: aiohttp's timeout errors are also OSErrors and TimeoutErrors, and
    its connector errors are also ClientOSErrors."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake/certificate
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        # Closed before the response, or before the whole body: httpcore says the same.
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # a status line or header we cannot parse
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):  # reset, broken pipe
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp reads it, with its errors in httpx's classes. Closing it
    gives the call's connection slot back."""

    def __init__(
        self, response: aiohttp.ClientResponse, request: httpx.Request, slot: asyncio.Semaphore
    ) -> None:
        self._response = response
        self._request = request
        self._slot: asyncio.Semaphore | None = slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._close()
            raise to_httpx_error(exc, self._request) from exc
        except BaseException:
            # Cancelled mid-body (a stopping worker): httpx will not close the response, so the
            # slot would be lost for the life of the process.
            self._close()
            raise

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return  # closed already
        # A body read to its end gives the connection back to the pool; one abandoned midway
        # leaves unread bytes on the socket, so that connection is closed instead.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()
        slot.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp.ClientSession (made on first use, inside the loop that uses it) whose
    connector holds up to `limit` connections over all hosts.

    The wait for a connection is the transport's own semaphore of `limit` slots, not aiohttp's
    queue: aiohttp's `connect` timeout covers that wait and the connect together, while httpx's
    pool timeout (a PoolTimeout, never billed) is the wait alone. A slot is held from the
    request until its response is closed, as a connection is, so aiohttp never queues."""

    def __init__(self, limit: int, keepalive_expiry: float, tls: ssl.SSLContext) -> None:
        self._limit = limit
        self._keepalive_expiry = keepalive_expiry
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    def _get_session(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._session is None or self._session.closed or self._slots is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=0,  # one provider host may use the whole pool
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._tls,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=[_trace_config()],
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._slots = asyncio.Semaphore(self._limit)
        return self._session, self._slots

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session, slots = self._get_session()
        t = request.extensions.get("timeout") or {}
        # The raw bytes, as httpx will send them (latin-1 is HTTP's own; httpx's decoded views
        # guess an encoding per call, which costs more than the rest of this method).
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() not in _SKIP_HEADERS
        )
        body = await request.aread()  # already built in memory for json=, content=, files=
        trace = request.extensions.get("trace")
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), t.get("pool"))
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free in time", request=request) from None
        else:
            await slots.acquire()  # free: returns at once
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx has encoded it; keep it verbatim
                data=body or None,
                headers=headers,
                timeout=client_timeout(t.get("connect"), t.get("read")),
                allow_redirects=False,
                trace_request_ctx=(trace, request) if trace is not None else None,
            )
        except BaseException as exc:
            slots.release()
            if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
                raise to_httpx_error(exc, request) from exc
            raise  # cancelled
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request, slots),
            request=request,
            extensions={
                "http_version": _HTTP11,
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
