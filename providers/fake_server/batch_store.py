"""State of the fake batch APIs: uploaded files, batches, and how a batch ends.

Batches are processed lazily: nothing runs in the background; whenever a batch is read, it is
moved on to where the clock says it is (in_progress until `processing_s` has passed, then ended).
Answers are computed when a batch ends, by the same machinery as the immediate endpoints.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.fake_server.formats import Format

Answer = Callable[[Format, Any], tuple[int, dict[str, Any]]]  # FakeApp.answer_batched
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WINDOW_S = 24 * 3600
OPENAI_ENDED = ("completed", "failed", "expired", "cancelled")


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created: int = field(default_factory=lambda: int(time.time()))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass
class Batch:
    id: str
    fmt: Format  # "openai" or "anthropic"
    items: list[tuple[str, Any]]  # (custom_id, request body / params)
    finish_at: float
    created: float = field(default_factory=time.time)
    status: str = "validating"  # OpenAI's word; Anthropic: in_progress / canceling / ended
    input_file_id: str | None = None
    metadata: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None  # OpenAI validation failures
    times: dict[str, float] = field(default_factory=dict)  # in_progress_at, completed_at, ...
    cancel_share: float = 0.0  # share processed when the cancel came
    # After the end: (custom_id, status code or None when unprocessed, body or None).
    outcomes: list[tuple[str, int | None, dict[str, Any] | None]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in OPENAI_ENDED or self.status == "ended"

    def counts(self) -> Counter[str]:
        return Counter(
            "unprocessed" if code is None else "ok" if code == 200 else "error"
            for _, code, _ in self.outcomes
        )


def openai_lines_errors(
    content: bytes, endpoint: str, max_requests: int, max_bytes: int
) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """The requests of an OpenAI batch input file, and what is wrong with it (OpenAI checks the
    file when the batch is created and fails the batch, listing the bad lines)."""
    errors: list[dict[str, Any]] = []

    def bad(line: int | None, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": line})

    if len(content) > max_bytes:
        bad(None, "file_too_large", f"The input file exceeds the maximum of {max_bytes} bytes.")
    items: list[tuple[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad(number, "invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("custom_id"), str):
            bad(number, "missing_required_parameter", "Missing custom_id.", "custom_id")
            continue
        cid, body = row["custom_id"], row.get("body")
        if row.get("method") != "POST":
            bad(number, "invalid_method", "The method must be POST.", "method")
        if row.get("url") != endpoint:
            bad(number, "invalid_url", f"The url must be {endpoint}, as the batch's.", "url")
        if not isinstance(body, dict) or not body.get("model"):
            bad(number, "missing_required_parameter", "The body needs a model.", "body.model")
        elif model is None:
            model = str(body["model"])
        elif body["model"] != model:
            bad(
                number,
                "mismatched_model",
                f"All requests in a batch must use the same model; expected '{model}', "
                f"got '{body['model']}'.",
                "body.model",
            )
        if cid in seen:
            bad(number, "duplicate_custom_id", f"The custom_id '{cid}' is duplicated.", "custom_id")
        seen.add(cid)
        items.append((cid, body))
    if len(items) > max_requests:
        bad(None, "too_many_tasks", f"A batch may have at most {max_requests} requests.")
    if not items and not errors:
        bad(None, "empty_file", "The input file has no requests.")
    return items, errors


def anthropic_items_errors(body: Any, max_requests: int) -> tuple[list[tuple[str, Any]], str]:
    """The requests of an Anthropic batch and the first problem with them ("" when none).
    Only the envelope is checked here; `params` are validated per request, as the real API
    does, and bad ones come back `errored`."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return [], "requests: Field required (a non-empty list)"
    if len(requests) > max_requests:
        return [], f"requests: at most {max_requests} requests per batch"
    items: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, req in enumerate(requests):
        cid = req.get("custom_id") if isinstance(req, dict) else None
        if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
            return (
                [],
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
            )
        if cid in seen:
            return [], f"requests.{i}.custom_id: duplicate custom_id '{cid}'"
        if not isinstance(req.get("params"), dict):
            return [], f"requests.{i}.params: Field required"
        seen.add(cid)
        items.append((cid, req["params"]))
    return items, ""


class BatchStore:
    """Every file and batch of one server, with the counters /_stats reports."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}  # creation order
        self.counts: Counter[str] = Counter()
        self.custom_ids: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        return {
            "files_uploaded": self.counts["files"],
            "created": {f: self.counts[f"created:{f}"] for f in ("openai", "anthropic")},
            "requests": {f: self.counts[f"requests:{f}"] for f in ("openai", "anthropic")},
            # How often each custom_id was submitted in an accepted batch: a retry-safe client
            # never submits one twice. `resubmitted` counts the ids seen more than once.
            "custom_ids": dict(self.custom_ids),
            "resubmitted": sum(1 for n in self.custom_ids.values() if n > 1),
        }

    def add_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(new_id("file-"), filename, purpose, content)
        self.files[stored.id] = stored
        return stored

    def add_batch(self, batch: Batch) -> Batch:
        self.batches[batch.id] = batch
        self.counts[f"created:{batch.fmt}"] += 1
        if batch.status != "failed":
            self.counts[f"requests:{batch.fmt}"] += len(batch.items)
            self.custom_ids.update(cid for cid, _ in batch.items)
        return batch

    def advance(self, batch: Batch, answer: Answer, expire_fraction: float) -> Batch:
        """Move `batch` on to where the clock says it is."""
        if batch.ended:
            return batch
        now = time.time()
        if batch.status in ("cancelling", "canceling"):
            return self.end(batch, answer, "cancelled", batch.cancel_share)
        if now >= batch.finish_at:
            if expire_fraction > 0:
                return self.end(batch, answer, "expired", 1.0 - expire_fraction)
            return self.end(batch, answer, "completed", 1.0)
        if batch.fmt == "openai" and batch.status == "validating":
            batch.status = "in_progress"
            batch.times["in_progress_at"] = now
        return batch

    def cancel(self, batch: Batch) -> None:
        now = time.time()
        span = batch.finish_at - batch.created
        batch.cancel_share = min(1.0, (now - batch.created) / span) if span > 0 else 1.0
        batch.status = "cancelling" if batch.fmt == "openai" else "canceling"
        batch.times["cancelling_at"] = now

    def end(self, batch: Batch, answer: Answer, how: str, processed_share: float) -> Batch:
        """End the batch `how` (completed, expired, cancelled): the first `processed_share` of
        its requests answered, the rest left unprocessed."""
        now = time.time()
        processed = (
            len(batch.items) if how == "completed" else int(len(batch.items) * processed_share)
        )
        batch.outcomes = []
        for i, (cid, body) in enumerate(batch.items):
            if i < processed:
                status, answered = answer(batch.fmt, body)
                batch.outcomes.append((cid, status, answered))
            else:
                batch.outcomes.append((cid, None, None))
        batch.times.setdefault("in_progress_at", batch.created)
        if batch.fmt == "openai":
            batch.times["finalizing_at"] = now
            batch.times[f"{how}_at"] = now
            batch.status = how
            self._write_files(batch, how)
        else:
            batch.status = "ended"
            batch.times["ended_at"] = now
        return batch

    def _write_files(self, batch: Batch, how: str) -> None:
        out: list[str] = []
        err: list[str] = []
        code = "batch_cancelled" if how == "cancelled" else "batch_expired"
        message = (
            "This request was cancelled before it was executed."
            if how == "cancelled"
            else "This request could not be executed before the completion window expired."
        )
        for cid, status, body in batch.outcomes:
            line: dict[str, Any] = {"id": new_id("batch_req_"), "custom_id": cid}
            if status is None:
                line.update(response=None, error={"code": code, "message": message})
            else:
                rid = f"req_{uuid.uuid4().hex[:24]}"
                line.update(
                    response={"status_code": status, "request_id": rid, "body": body}, error=None
                )
            (out if status == 200 else err).append(json.dumps(line))
        if out:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self.add_file(name, "batch_output", _jsonl(out)).id
        if err:
            name = f"{batch.id}_error.jsonl"
            batch.error_file_id = self.add_file(name, "batch_output", _jsonl(err)).id


def _jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()
