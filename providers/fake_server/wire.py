"""A small HTTP/1.1 server on asyncio streams: keep-alive, Content-Length and chunked bodies.

Hand-written rather than a framework because the fake server must misbehave on purpose
(a body cut short of its Content-Length, a request that never gets an answer), which frameworks
make hard, and because one asyncio task per connection holds thousands of open requests on
2 cores with no new dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 260 * 1024 * 1024  # Anthropic batches may be 256 MB


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    disconnected: Callable[[], bool] = lambda: False

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    truncate_to: int | None = None  # send only this many body bytes, then close the connection
    close: bool = False
    # A streamed body (server-sent events), sent chunked as it is produced; `stream_cut` ends
    # it without the closing chunk, as a connection that drops mid-answer.
    stream: AsyncIterator[bytes] | None = None
    stream_cut: bool = False

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"content-type": "application/json"}
        hdrs.update(headers or {})
        return cls(status, json.dumps(data).encode(), hdrs)


Handler = Callable[[Request], Awaitable[Response]]


def _reason(status: int) -> str:
    if status == 529:
        return "Site Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _BadRequest(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # the client closed the connection between requests
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise _BadRequest(f"bad request line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()  # trailer end (we accept no trailers)
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    else:
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY_BYTES:
            raise _BadRequest("body too large")
        body = await reader.readexactly(length) if length else b""
    parts = urlsplit(target)
    return Request(method.upper(), parts.path, dict(parse_qsl(parts.query)), headers, body)


def _encode_head(response: Response, keep_alive: bool) -> bytes:
    headers = {"content-type": "application/json", **response.headers}
    if response.stream is None:
        headers["content-length"] = str(len(response.body))
    else:
        headers["transfer-encoding"] = "chunked"
    headers["connection"] = "keep-alive" if keep_alive else "close"
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def handle_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Serve requests on one connection until the client or the handler closes it."""
    try:
        while True:
            try:
                request = await _read_request(reader)
            except (_BadRequest, ValueError, asyncio.IncompleteReadError) as exc:
                error = Response.json(400, {"error": {"message": f"bad HTTP request: {exc}"}})
                writer.write(_encode_head(error, False) + error.body)
                break
            if request is None:
                break
            request.disconnected = reader.at_eof
            response = await handler(request)
            if writer.is_closing() or reader.at_eof():
                break  # the client gave up (timeout); nobody to answer
            keep_alive = (
                request.headers.get("connection", "").lower() != "close"
                and response.truncate_to is None
                and not response.close
                and not response.stream_cut
            )
            if response.stream is not None:
                writer.write(_encode_head(response, keep_alive))
                async for chunk in response.stream:
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                if response.stream_cut:
                    break  # no closing chunk: the client sees the body end early
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                if not keep_alive:
                    break
                continue
            body = response.body
            if response.truncate_to is not None:
                body = body[: response.truncate_to]
            writer.write(_encode_head(response, keep_alive) + body)
            await writer.drain()
            if not keep_alive:
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
