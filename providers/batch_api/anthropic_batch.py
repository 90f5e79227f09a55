"""Anthropic Message Batches: POST /v1/messages/batches with every request inline, poll
GET /v1/messages/batches/{id} until `processing_status` is `ended`, stream the JSONL at
`results_url`.

Each request's `params` is exactly the immediate adapter's body (build_payload) and each
`succeeded` message goes through the same parse_response. `errored` results are not billed;
`expired` and `canceled` ones never ran.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from providers.anthropic import build_payload, parse_response, target_for
from providers.batch_api import (
    MARKER_SEP,
    BatchRequest,
    BatchResult,
    BatchStatus,
    BatchStillUnknown,
)
from providers.batch_api.common import (
    answered,
    call,
    cutoff,
    failed,
    jsonl,
    stub_request,
)
from routing.deployments import Deployment
from routing.types import CompletionResult, ErrorClass, ProviderError

PATH = "/v1/messages/batches"
PAGE = 100
# An `errored` result carries the error body but no status; the status its type stands for.
_STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatchClient:
    async def _call(
        self,
        deployment: Deployment,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        expect_json: bool = True,
        **body: Any,
    ) -> Any:
        base, headers, extra, key = target_for(deployment)
        raw = await call(
            "anthropic",
            method,
            url if url.startswith("http") else f"{base}{url}",
            headers=headers,
            params={**extra, **(params or {})},
            deployment=deployment,
            secrets=(key,),
            expect_json=expect_json,
            **body,
        )
        return raw.body if expect_json else raw.text

    def encode(self, item: BatchRequest, deployment: Deployment) -> bytes:
        params = build_payload(item.request, deployment)
        return json.dumps({"custom_id": item.custom_id, "params": params}).encode()

    async def prepare(
        self, items: list[BatchRequest], deployment: Deployment, marker: str
    ) -> str | None:
        return None  # requests travel inline with create

    async def create(
        self,
        items: list[BatchRequest],
        deployment: Deployment,
        marker: str,
        input_file_id: str | None,
    ) -> str:
        # Joined from encode() so the bytes sent are the bytes the size limit was checked on.
        content = b'{"requests":[' + b",".join(self.encode(i, deployment) for i in items) + b"]}"
        body = await self._call(deployment, "POST", PATH, content=content)
        return str(body["id"])

    async def find(
        self, deployment: Deployment, marker: str, since: datetime, request_count: int
    ) -> str | None:
        """No metadata here: candidates are batches created since `since` (minus the slack)
        with `request_count` requests; an ended one is ours when its custom_ids start with
        "{marker}-". An unmatched candidate still running makes the answer unknown."""
        oldest = cutoff(since)
        undecided: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": str(PAGE), **({"after_id": after} if after else {})}
            page = await self._call(deployment, "GET", PATH, params=params)
            data = [b for b in page.get("data") or [] if isinstance(b, dict)]
            done = not data or not page.get("has_more")
            for batch in data:
                if _timestamp(batch.get("created_at")) < oldest:
                    done = True
                    break
                counts = batch.get("request_counts") or {}
                if sum(v for v in counts.values() if isinstance(v, int)) != request_count:
                    continue
                if batch.get("processing_status") != "ended" or not batch.get("results_url"):
                    undecided.append(str(batch["id"]))
                    continue
                text = await self._call(
                    deployment, "GET", str(batch["results_url"]), expect_json=False
                )
                rows = jsonl("anthropic", text)
                if rows and _ours(rows[0]["custom_id"], marker):
                    return str(batch["id"])
            if done:
                break
            after = str(data[-1]["id"])
        if undecided:
            raise BatchStillUnknown(
                f"anthropic: batches {', '.join(undecided)} may be marker {marker}'s; "
                "they have not ended yet"
            )
        return None

    async def status(self, deployment: Deployment, provider_id: str) -> BatchStatus:
        body = await self._call(deployment, "GET", f"{PATH}/{provider_id}")
        status = str(body.get("processing_status"))
        counts = body.get("request_counts") or {}
        return BatchStatus(
            provider_id=str(body.get("id") or provider_id),
            status=status,
            ended=status == "ended",
            counts={k: int(v) for k, v in counts.items() if isinstance(v, int)},
            output_ref=body.get("results_url"),
        )

    async def results(self, deployment: Deployment, status: BatchStatus) -> list[BatchResult]:
        if not status.output_ref:
            return []
        text = await self._call(deployment, "GET", status.output_ref, expect_json=False)
        secrets = (target_for(deployment)[3],)
        return [
            BatchResult(row["custom_id"], _outcome(row.get("result"), deployment, secrets))
            for row in jsonl("anthropic", text)
        ]

    async def cancel(self, deployment: Deployment, provider_id: str) -> None:
        await self._call(deployment, "POST", f"{PATH}/{provider_id}/cancel")


def _ours(custom_id: str, marker: str) -> bool:
    return custom_id.startswith(marker + MARKER_SEP)


def _timestamp(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")  # unreadable: treat as recent, so it is looked at


def _outcome(
    result: Any, deployment: Deployment, secrets: tuple[str | None, ...]
) -> CompletionResult | ProviderError | None:
    kind = result.get("type") if isinstance(result, dict) else None
    if kind in ("expired", "canceled"):
        return None
    if kind == "errored":
        assert isinstance(result, dict)
        body = result.get("error")
        inner = body.get("error") if isinstance(body, dict) else None
        error_type = inner.get("type") if isinstance(inner, dict) else None
        return failed("anthropic", _STATUS_OF.get(str(error_type), 500), body, secrets)
    if kind == "succeeded":
        assert isinstance(result, dict)
        message = result.get("message")
        if not isinstance(message, dict):
            return ProviderError(ErrorClass.BAD_RESPONSE, "anthropic batch: succeeded, no message")
        raw = answered(message, None, "request-id")
        try:
            return parse_response(raw, stub_request(deployment, message.get("model")))
        except ProviderError as exc:
            return exc
    return ProviderError(ErrorClass.BAD_RESPONSE, f"anthropic batch: unknown result {kind!r}")
