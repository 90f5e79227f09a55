"""OpenAI Batch API: upload a JSONL file (POST /files, purpose=batch), POST /batches, poll
GET /batches/{id}, read the output and error files (GET /files/{id}/content).

Each line's body is exactly what the immediate adapter would POST to /chat/completions
(build_payload with the deployment's profile), and each answer goes through the same
parse_response, so a batch result and an immediate result of the same request are alike.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from providers.batch_api import BatchRequest, BatchResult, BatchStatus
from providers.batch_api.common import (
    answered,
    call,
    cutoff,
    failed,
    jsonl,
    stub_request,
)
from providers.openai_compat import (
    Target,
    build_payload,
    parse_response,
    profile_for,
    target_for,
)
from routing.deployments import Deployment
from routing.types import CompletionResult, ErrorClass, ProviderError

ENDPOINT = "/v1/chat/completions"
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
UNPROCESSED = frozenset({"batch_expired", "batch_cancelled"})  # not run, not billed
PAGE = 100


class OpenAIBatchClient:
    async def _call(
        self,
        target: Target,
        deployment: Deployment,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        expect_json: bool = True,
        **body: Any,
    ) -> Any:
        headers = dict(target.headers)
        if "files" in body:
            headers.pop("content-type", None)  # httpx sets multipart/form-data; boundary=...
        raw = await call(
            target.profile.name,
            method,
            f"{target.base}{path}",
            headers=headers,
            params={**target.params, **(params or {})},
            deployment=deployment,
            secrets=(target.key,),
            expect_json=expect_json,
            **body,
        )
        return raw.body if expect_json else raw.text

    def encode(self, item: BatchRequest, deployment: Deployment) -> bytes:
        body = build_payload(item.request, deployment, profile_for(deployment))
        line = {"custom_id": item.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        return (json.dumps(line, separators=(",", ":")) + "\n").encode()

    async def prepare(
        self, items: list[BatchRequest], deployment: Deployment, marker: str
    ) -> str | None:
        content = b"".join(self.encode(item, deployment) for item in items)
        body = await self._call(
            target_for(deployment),
            deployment,
            "POST",
            "/files",
            files={"file": (f"{marker}.jsonl", content, "application/jsonl")},
            data={"purpose": "batch"},
        )
        return str(body["id"])

    async def create(
        self,
        items: list[BatchRequest],
        deployment: Deployment,
        marker: str,
        input_file_id: str | None,
    ) -> str:
        if not input_file_id:
            raise ProviderError(ErrorClass.INTERNAL, "openai batch: create needs prepare's file id")
        payload = {
            "input_file_id": input_file_id,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {"batchrouter_id": marker},
        }
        body = await self._call(
            target_for(deployment), deployment, "POST", "/batches", json=payload
        )
        return str(body["id"])

    async def find(
        self, deployment: Deployment, marker: str, since: datetime, request_count: int
    ) -> str | None:
        """Newest first, page by page, back to `since` minus the slack; match the metadata.
        (`request_count` is not needed: OpenAI keeps our marker in the metadata.)"""
        target = target_for(deployment)
        oldest = cutoff(since)
        after: str | None = None
        while True:
            params = {"limit": str(PAGE), **({"after": after} if after else {})}
            page = await self._call(target, deployment, "GET", "/batches", params=params)
            data = [b for b in page.get("data") or [] if isinstance(b, dict)]
            for batch in data:
                if (batch.get("metadata") or {}).get("batchrouter_id") == marker:
                    return str(batch["id"])
            if not data or not page.get("has_more"):
                return None
            if min(float(b.get("created_at") or 0) for b in data) < oldest:
                return None
            after = str(data[-1]["id"])

    async def status(self, deployment: Deployment, provider_id: str) -> BatchStatus:
        body = await self._call(
            target_for(deployment), deployment, "GET", f"/batches/{provider_id}"
        )
        status = str(body.get("status"))
        errors = (body.get("errors") or {}).get("data") or []
        reason = None
        if status == "failed":
            reason = "; ".join(_error_text(e) for e in errors if isinstance(e, dict)) or "failed"
        counts = body.get("request_counts") or {}
        return BatchStatus(
            provider_id=str(body.get("id") or provider_id),
            status=status,
            ended=status in ENDED,
            failed_reason=reason,
            counts={k: int(v) for k, v in counts.items() if isinstance(v, int)},
            output_ref=body.get("output_file_id"),
            error_ref=body.get("error_file_id"),
        )

    async def results(self, deployment: Deployment, status: BatchStatus) -> list[BatchResult]:
        target = target_for(deployment)
        out: list[BatchResult] = []
        for ref in (status.output_ref, status.error_ref):
            if not ref:
                continue
            text = await self._call(
                target, deployment, "GET", f"/files/{ref}/content", expect_json=False
            )
            for row in jsonl(target.profile.name, text):
                out.append(BatchResult(row["custom_id"], self._outcome(row, deployment, target)))
        return out

    def _outcome(
        self, row: dict[str, Any], deployment: Deployment, target: Target
    ) -> CompletionResult | ProviderError | None:
        name = target.profile.name
        response = row.get("response")
        if not isinstance(response, dict):
            error = row.get("error")
            if not isinstance(error, dict):
                error = {}
            if error.get("code") in UNPROCESSED:
                return None
            # Some other per-request failure without a response: not billed; retryable.
            return ProviderError(ErrorClass.TRANSIENT, f"{name} batch: {_error_text(error)}")
        code = int(response.get("status_code") or 0)
        body = response.get("body")
        if code != 200:
            return failed(name, code, body, (target.key,))
        if not isinstance(body, dict):
            return ProviderError(ErrorClass.BAD_RESPONSE, f"{name} batch: 200 without a body")
        raw = answered(body, response.get("request_id"), "x-request-id")
        try:
            return parse_response(raw, stub_request(deployment, body.get("model")), name)
        except ProviderError as exc:
            return exc

    async def cancel(self, deployment: Deployment, provider_id: str) -> None:
        await self._call(
            target_for(deployment), deployment, "POST", f"/batches/{provider_id}/cancel"
        )


def _error_text(error: dict[str, Any]) -> str:
    where = f"line {error['line']}: " if error.get("line") is not None else ""
    code = f"{error['code']}: " if error.get("code") else ""
    return f"{where}{code}{error.get('message') or ''}"
