"""HTTP and parsing helpers shared by the two batch clients."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from providers.errors import redact
from providers.http import RawResponse, send, status_error
from routing.deployments import Deployment
from routing.types import CompletionRequest, ErrorClass, ProviderError

# `find` looks this far before `since`: clocks differ, and `since` is taken around the create.
FIND_SLACK_S = 300.0


async def call(
    provider: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    params: dict[str, str],
    deployment: Deployment,
    secrets: tuple[str | None, ...],
    expect_json: bool = True,
    **body: Any,
) -> RawResponse:
    """One request to a batch endpoint. Transport failures and non-2xx answers raise a
    classified ProviderError; so does a 2xx whose body is unusable (TRANSIENT: read it again)."""
    raw = await send(
        provider,
        method,
        url,
        headers=headers,
        params=params,
        deployment=deployment,
        secrets=secrets,
        **body,
    )
    if raw.status >= 300:
        raise status_error(provider, raw, secrets)
    if raw.truncated or (expect_json and not isinstance(raw.body, dict)):
        what = "truncated body" if raw.truncated else "body is not a JSON object"
        raise ProviderError(
            ErrorClass.TRANSIENT,
            f"{provider} HTTP {raw.status} {method} batch API: {what}: "
            f"{redact(raw.text[:200], secrets)!r}",
            status_code=raw.status,
            latency_ms=raw.latency_ms,
        )
    return raw


def jsonl(provider: str, text: str) -> list[dict[str, Any]]:
    """The objects of a JSONL results file; a bad line fails the read (TRANSIENT: re-read)."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("custom_id"), str):
            raise ProviderError(
                ErrorClass.TRANSIENT, f"{provider}: results line {number} is not a result object"
            )
        rows.append(row)
    return rows


def answered(body: Any, request_id: str | None, header: str) -> RawResponse:
    """A batch result's 200 body dressed as an HTTP exchange, for the adapters' parse_response.
    Latency 0: a batch gives no per-request latency."""
    headers = httpx.Headers({header: request_id} if request_id else {})
    return RawResponse(200, headers, "", body, 0.0)


def failed(provider: str, status: int, body: Any, secrets: tuple[str | None, ...]) -> ProviderError:
    """A non-200 result inside a batch, classified like an HTTP error of that status."""
    raw = RawResponse(status, httpx.Headers(), json.dumps(body)[:500], body, 0.0)
    return status_error(provider, raw, secrets)


def stub_request(deployment: Deployment, model: str | None) -> CompletionRequest:
    """parse_response wants the request only to estimate usage a body lacks (batch bodies carry
    usage), and results() does not get the requests: a stand-in with the model is enough."""
    return CompletionRequest(
        deployment=deployment.model,
        model=model or deployment.model,
        messages=[],
        max_output_tokens=deployment.max_output_tokens,
    )


def cutoff(since: datetime) -> float:
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.timestamp() - FIND_SLACK_S
