"""The fake server's batch endpoints: OpenAI Files + Batches, Anthropic Message Batches.

Shapes follow the real APIs (the openai and anthropic SDKs' Batch / MessageBatch types). Test controls: POST /_batches/{id}/finish ends a batch now,
POST /_batches/{id}/expire?processed=0.5 ends it now as expired with that share answered.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Protocol

from providers.fake_server.batch_store import (
    WINDOW_S,
    Batch,
    BatchStore,
    anthropic_items_errors,
    new_id,
    openai_lines_errors,
)
from providers.fake_server.config import FakeServerConfig
from providers.fake_server.errors import error_body
from providers.fake_server.formats import Format
from providers.fake_server.wire import Request, Response


class FakeApp(Protocol):
    """What the batch endpoints need of the server (app.py's FakeApp has it all)."""

    config: FakeServerConfig
    batches: BatchStore

    def answer_batched(self, fmt: Format, body: Any) -> tuple[int, dict[str, Any]]: ...

    def authorized(self, fmt: Format, request: Request) -> bool: ...

    def _request_id(self) -> str: ...


ENDPOINT = "/v1/chat/completions"
_PREFIXES = ("/v1/files", "/v1/batches", "/v1/messages/batches")
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    413: "request_too_large",
}


def is_batch_path(path: str) -> bool:
    return path.startswith(_PREFIXES)


def _fail(fmt: Format, status: int, message: str) -> Response:
    if fmt == "openai":
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return Response.json(status, {"error": error})
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "invalid_request_error")
    return Response.json(status, {"type": "error", "error": {"type": kind, "message": message}})


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(ts: float | None) -> int | None:
    return None if ts is None else int(ts)


async def handle_batch(app: FakeApp, request: Request) -> Response:
    path, method = request.path.rstrip("/"), request.method
    if path.startswith("/_batches/"):
        return _control(app, request)
    fmt: Format = "anthropic" if path.startswith("/v1/messages/") else "openai"
    if app.config.api_key is not None and not app.authorized(fmt, request):
        status, body = _auth_body(app, fmt)
        return Response.json(status, body)
    parts = path.split("/")[2:]  # ["files", ...], ["batches", ...], ["messages", "batches", ...]
    if fmt == "anthropic":
        parts = parts[2:]
        if method == "POST" and not parts:
            return _anthropic_create(app, request)
        if method == "GET" and not parts:
            return _list(app, "anthropic", request.query.get("after_id"), request)
    elif parts[0] == "files":
        if method == "POST" and len(parts) == 1:
            return _upload(app, request)
        if method == "GET" and len(parts) in (2, 3):
            stored = app.batches.files.get(parts[1])
            if stored is None:
                return _fail(fmt, 404, f"No such File object: {parts[1]}")
            if len(parts) == 2:
                return Response.json(200, stored.as_json())
            if parts[2] == "content":
                return Response(200, stored.content, {"content-type": "application/jsonl"})
    else:
        parts = parts[1:]
        if method == "POST" and not parts:
            return _openai_create(app, request)
        if method == "GET" and not parts:
            return _list(app, "openai", request.query.get("after"), request)
    if parts and (method, len(parts)) in (("GET", 1), ("POST", 2), ("GET", 2)):
        batch = app.batches.batches.get(parts[0])
        if batch is None or batch.fmt != fmt:
            return _fail(fmt, 404, f"No batch found with id '{parts[0]}'.")
        _advance(app, batch)
        if method == "GET" and len(parts) == 1:
            return Response.json(200, _render(batch, request))
        if method == "POST" and parts[1] == "cancel":
            if batch.ended or batch.status in ("cancelling", "canceling"):
                return _fail(fmt, 409, f"Cannot cancel a batch with status '{batch.status}'.")
            app.batches.cancel(batch)
            return Response.json(200, _render(batch, request))
        if method == "GET" and parts[1] == "results" and fmt == "anthropic":
            return _anthropic_results(batch)
    return _fail(fmt, 404, f"no route {method} {request.path}")


def _auth_body(app: FakeApp, fmt: Format) -> tuple[int, dict[str, Any]]:
    return error_body(fmt, "auth", app._request_id())


def _advance(app: FakeApp, batch: Batch) -> Batch:
    return app.batches.advance(batch, app.answer_batched, app.config.batch.expire_fraction)


def _control(app: FakeApp, request: Request) -> Response:
    match = re.fullmatch(r"/_batches/([^/]+)/(finish|expire)", request.path)
    batch = app.batches.batches.get(match.group(1)) if match else None
    if request.method != "POST" or match is None or batch is None:
        return Response.json(404, {"error": {"message": f"no batch control {request.path}"}})
    if not batch.ended:
        if match.group(2) == "finish":
            app.batches.end(batch, app.answer_batched, "completed", 1.0)
        else:
            share = float(request.query.get("processed", "0"))
            app.batches.end(batch, app.answer_batched, "expired", share)
    return Response.json(200, _render(batch, request))


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, bytes) of a multipart/form-data body: a small boundary split, exact
    on binary data (email.parser would reinterpret line endings)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("expected multipart/form-data with a boundary")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'\bname="([^"]*)"', head)
        if not sep or name is None:
            continue
        filename = re.search(rb'filename="([^"]*)"', head)
        fields[name.group(1).decode()] = (
            filename.group(1).decode() if filename else None,
            data.removesuffix(b"\r\n"),
        )
    return fields


def _upload(app: FakeApp, request: Request) -> Response:
    try:
        fields = _multipart(request.headers.get("content-type", ""), request.body)
    except ValueError as exc:
        return _fail("openai", 400, str(exc))
    purpose = fields.get("purpose", (None, b""))[1].decode()
    if "file" not in fields:
        return _fail("openai", 400, "Missing required parameter: 'file'.")
    if purpose != "batch":
        return _fail(
            "openai", 400, f"This fake server takes purpose 'batch' only, not {purpose!r}."
        )
    filename, content = fields["file"]
    app.batches.counts["files"] += 1
    stored = app.batches.add_file(filename or "upload.jsonl", purpose, content)
    return Response.json(200, stored.as_json())


def _openai_create(app: FakeApp, request: Request) -> Response:
    try:
        body = request.json()
    except ValueError:
        return _fail("openai", 400, "The body is not valid JSON.")
    if not isinstance(body, dict):
        return _fail("openai", 400, "The body must be a JSON object.")
    if body.get("endpoint") != ENDPOINT:
        return _fail("openai", 400, f"This fake server batches {ENDPOINT} only.")
    if body.get("completion_window") != "24h":
        return _fail("openai", 400, "completion_window must be '24h'.")
    stored = app.batches.files.get(str(body.get("input_file_id")))
    if stored is None:
        return _fail("openai", 404, f"No such File object: {body.get('input_file_id')}")
    cfg = app.config.batch
    items, errors = openai_lines_errors(
        stored.content, ENDPOINT, cfg.openai_max_requests, cfg.openai_max_bytes
    )
    batch = Batch(
        new_id("batch_"),
        "openai",
        items,
        finish_at=0.0,
        input_file_id=stored.id,
        metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
    )
    batch.finish_at = batch.created + cfg.processing_s
    if errors:
        batch.status, batch.errors, batch.items = "failed", errors, []
        batch.times["failed_at"] = batch.created
    app.batches.add_batch(batch)
    return Response.json(200, _render(batch, request))


def _anthropic_create(app: FakeApp, request: Request) -> Response:
    cfg = app.config.batch
    if len(request.body) > cfg.anthropic_max_bytes:
        return _fail(
            "anthropic", 413, f"Request exceeds the maximum of {cfg.anthropic_max_bytes} bytes."
        )
    try:
        body = request.json()
    except ValueError:
        return _fail("anthropic", 400, "The body is not valid JSON.")
    items, problem = anthropic_items_errors(body, cfg.anthropic_max_requests)
    if problem:
        return _fail("anthropic", 400, problem)
    batch = Batch(new_id("msgbatch_"), "anthropic", items, finish_at=0.0, status="in_progress")
    batch.finish_at = batch.created + cfg.processing_s
    app.batches.add_batch(batch)
    return Response.json(200, _render(batch, request))


def _list(app: FakeApp, fmt: Format, after: str | None, request: Request) -> Response:
    try:
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
    except ValueError:
        return _fail(fmt, 400, "limit must be an integer")
    newest_first = [b for b in reversed(app.batches.batches.values()) if b.fmt == fmt]
    if after is not None:
        ids = [b.id for b in newest_first]
        newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
    page = [_advance(app, b) for b in newest_first[:limit]]
    data = [_render(b, request) for b in page]
    listing: dict[str, Any] = {
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(newest_first) > limit,
    }
    if fmt == "openai":
        listing = {"object": "list", **listing}
    return Response.json(200, listing)


def _render(batch: Batch, request: Request) -> dict[str, Any]:
    return _render_openai(batch) if batch.fmt == "openai" else _render_anthropic(batch, request)


def _render_openai(batch: Batch) -> dict[str, Any]:
    t = batch.times
    counts = batch.counts()
    total = len(batch.items)
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created),
        "in_progress_at": _int(t.get("in_progress_at")),
        "expires_at": int(batch.created) + WINDOW_S,
        "finalizing_at": _int(t.get("finalizing_at")),
        "completed_at": _int(t.get("completed_at")),
        "failed_at": _int(t.get("failed_at")),
        "expired_at": _int(t.get("expired_at")),
        "cancelling_at": _int(t.get("cancelling_at")),
        "cancelled_at": _int(t.get("cancelled_at")),
        "request_counts": {
            "total": total,
            "completed": counts["ok"],
            "failed": counts["error"] + counts["unprocessed"],
        },
        "metadata": batch.metadata,
    }


def _render_anthropic(batch: Batch, request: Request) -> dict[str, Any]:
    counts = batch.counts()
    unprocessed = "canceled" if "cancelling_at" in batch.times else "expired"
    results_url = None
    if batch.ended:
        host = request.headers.get("host", "127.0.0.1")
        results_url = f"http://{host}/v1/messages/batches/{batch.id}/results"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status,
        "request_counts": {
            "processing": 0 if batch.ended else len(batch.items),
            "succeeded": counts["ok"],
            "errored": counts["error"],
            "canceled": counts["unprocessed"] if unprocessed == "canceled" else 0,
            "expired": counts["unprocessed"] if unprocessed == "expired" else 0,
        },
        "ended_at": _rfc3339(batch.times.get("ended_at")),
        "created_at": _rfc3339(batch.created),
        "expires_at": _rfc3339(batch.created + WINDOW_S),
        "cancel_initiated_at": _rfc3339(batch.times.get("cancelling_at")),
        "archived_at": None,
        "results_url": results_url,
    }


def _anthropic_results(batch: Batch) -> Response:
    if not batch.ended:
        return _fail("anthropic", 400, f"Batch {batch.id} is still {batch.status}; no results yet.")
    unprocessed = "canceled" if "cancelling_at" in batch.times else "expired"
    lines = []
    for cid, status, body in batch.outcomes:
        result: dict[str, Any]
        if status is None:
            result = {"type": unprocessed}
        elif status == 200:
            result = {"type": "succeeded", "message": body}
        else:
            result = {"type": "errored", "error": body}
        lines.append({"custom_id": cid, "result": result})
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return Response(200, content, {"content-type": "application/binary"})
