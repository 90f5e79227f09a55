"""The fake provider's behaviour: routing, auth, limits, error injection, answers, stats.

Requests are answered in OpenAI, Anthropic or Gemini format by path. Per request, in order:
auth (when `api_key` is set) -> body validation (400) -> context window (real 400) ->
RPM/TPM buckets (real 429 with headers) -> injected error (config fractions, or the
`x-fake-error: <kind>` header) -> latency -> answer with tiktoken-counted usage and prompt-cache
use (caching.py), as one JSON body or, for `"stream": true`, as server-sent events
(streaming.py). Anthropic's POST /v1/messages/count_tokens answers the same count, free.
Batch API paths go to batch_api.py, whose requests are answered by `answer_batched`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.fake_server.answers import compose
from providers.fake_server.batch_api import handle_batch, is_batch_path
from providers.fake_server.batch_store import BatchStore
from providers.fake_server.caching import CacheUse, PromptCache
from providers.fake_server.config import ERROR_KINDS, FakeServerConfig
from providers.fake_server.errors import error_body
from providers.fake_server.formats import (
    BadCall,
    Call,
    Format,
    Outcome,
    parse_anthropic,
    parse_gemini,
    parse_openai,
    success_body,
)
from providers.fake_server.limits import Bucket, go_duration
from providers.fake_server.streaming import anthropic_events, broken, openai_events, paced
from providers.fake_server.wire import Request, Response
from routing.tokens import count_message_tokens, is_exact

_GEMINI_PATH = re.compile(r"^/(?:v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")
_COUNT_TOKENS = "/v1/messages/count_tokens"


class FakeApp:
    """One server's state. Runs on one event loop; no locking needed."""

    def __init__(self, config: FakeServerConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.cache = PromptCache()
        self.batches = BatchStore()
        self.reset_stats()

    def reset_stats(self) -> None:
        self.started = time.time()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.counts: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.counts["requests"],
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "by_format": {k[4:]: v for k, v in self.counts.items() if k.startswith("fmt:")},
            "by_status": dict(self.by_status),
            "injected": dict(self.injected),
            "rate_limited": self.counts["rate_limited"],
            "prompt_tokens": self.counts["prompt_tokens"],
            "output_tokens": self.counts["output_tokens"],
            "uptime_s": round(time.time() - self.started, 3),
            "batches": self.batches.stats(),
        }

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/_stats":
            return Response.json(200, self.stats())
        if request.method == "POST" and request.path == "/_reset":
            self.reset_stats()
            self.buckets.clear()
            self.cache.clear()
            self.batches.reset()
            return Response.json(200, {"ok": True})
        if request.method == "GET" and request.path in ("/health", "/_health"):
            return Response.json(200, {"ok": True})
        if request.path.startswith("/_batches/"):  # test controls, not counted as API calls
            return await handle_batch(self, request)
        self.counts["requests"] += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            response = await self._api(request)
        finally:
            self.in_flight -= 1
        self.by_status[str(response.status)] += 1
        return response

    def _request_id(self) -> str:
        return f"{self.rng.getrandbits(96):024x}"

    async def _api(self, request: Request) -> Response:
        path = request.path
        fmt: Format
        model = ""
        if is_batch_path(path):
            return await handle_batch(self, request)
        if request.method == "POST" and path.endswith("/chat/completions"):
            fmt = "openai"
        elif request.method == "POST" and path in ("/v1/messages", _COUNT_TOKENS):
            fmt = "anthropic"
        elif request.method == "POST" and (m := _GEMINI_PATH.match(path)):
            fmt, model = "gemini", m.group(1)
        else:
            return Response.json(404, {"error": {"message": f"no route {request.method} {path}"}})
        self.counts[f"fmt:{fmt}"] += 1
        rid = self._request_id()
        if self.config.api_key is not None and not self.authorized(fmt, request):
            return self._error(fmt, "auth", rid, {})
        try:
            body = request.json()
            if fmt == "openai":
                call = parse_openai(body)
            elif fmt == "anthropic":
                call = parse_anthropic(body, count_only=path == _COUNT_TOKENS)
            else:
                call = parse_gemini(model, body)
        except (BadCall, ValueError) as exc:
            return self._error(fmt, "bad_request", rid, {"detail": str(exc)})
        forced = request.headers.get("x-fake-error")
        if forced is not None and forced not in ERROR_KINDS:
            detail = f"x-fake-error must be one of {', '.join(ERROR_KINDS)}"
            return self._error(fmt, "bad_request", rid, {"detail": detail})
        prompt_tokens, info, too_long = self._measure(fmt, call)
        if path == _COUNT_TOKENS:  # free: no limits, no answer; the count the message would bill
            return Response.json(
                200, {"input_tokens": prompt_tokens}, self._headers(fmt, call, rid)
            )
        if too_long:
            return self._error(fmt, "context_length", rid, info)
        limited = self._rate_limit(fmt, call, prompt_tokens, rid)
        if limited is not None:
            return limited
        kind = forced or self._draw_error()
        if kind is not None:
            self.injected[kind] += 1
        if kind == "hang":
            return await self._hang(fmt, request, rid, info)
        if kind == "rate_limit":
            retry = self.config.errors.retry_after_s
            return self._error(
                fmt,
                "rate_limit",
                rid,
                {**info, "retry": f"{retry:g}", "limit": self.config.limits.rpm or 60},
                retry_after=retry,
            )
        if kind is not None and kind not in ("malformed_json", "empty_content", "truncated_body"):
            return self._error(fmt, kind, rid, info)
        outcome = self._answer(call, prompt_tokens, rid, empty=kind == "empty_content")
        first_ms, per_token_ms = self._latency_ms(request)
        if call.stream and fmt != "gemini":
            make = openai_events if fmt == "openai" else anthropic_events
            events, cut = broken(make(call, outcome), kind)
            headers = {**self._headers(fmt, call, rid), "content-type": "text/event-stream"}
            stream = paced(events, first_ms / 1000, per_token_ms / 1000)
            return Response(200, headers=headers, stream=stream, stream_cut=cut)
        await asyncio.sleep((first_ms + per_token_ms * outcome.output_tokens) / 1000)
        response = Response.json(200, success_body(call, outcome), self._headers(fmt, call, rid))
        if kind == "malformed_json":
            response.body = b'{"id": "chatcmpl-' + rid.encode() + b'", "choices": [{"message": }'
        elif kind == "truncated_body":
            response.truncate_to = len(response.body) // 2
        return response

    def _measure(self, fmt: Format, call: Call) -> tuple[int, dict[str, Any], bool]:
        """(prompt tokens, error-text info, whether the prompt exceeds the context window)."""
        tokens = count_message_tokens(
            call.messages, call.model if is_exact(call.model) else "gpt-4o"
        )
        info = {"model": call.model, "tokens": tokens, "window": self.config.context_window}
        return tokens, info, tokens + (1 if fmt == "gemini" else 0) > self.config.context_window

    def answer_batched(self, fmt: Format, body: Any) -> tuple[int, dict[str, Any]]:
        """(status, body) for one request inside a batch: the same parsing, injected errors and
        answers as the immediate endpoints, but no latency and no RPM/TPM buckets (batch APIs
        have their own pool). Kinds that only make sense on a live connection become errors a
        batch can report: a hang times out, a broken body is a server error."""
        rid = self._request_id()
        try:
            call = parse_openai(body) if fmt == "openai" else parse_anthropic(body)
        except (BadCall, ValueError) as exc:
            return error_body(fmt, "bad_request", rid, detail=str(exc))
        prompt_tokens, info, too_long = self._measure(fmt, call)
        if too_long:
            return error_body(fmt, "context_length", rid, **info)
        kind = self._draw_error()
        if kind is not None:
            self.injected[kind] += 1
        if kind == "hang":
            kind = "timeout"
        elif kind in ("malformed_json", "truncated_body"):
            kind = "server_error"
        if kind == "rate_limit":
            info.update(retry=f"{self.config.errors.retry_after_s:g}", limit=60)
        if kind is not None and kind != "empty_content":
            return error_body(fmt, kind, rid, **info)
        outcome = self._answer(call, prompt_tokens, rid, empty=kind == "empty_content")
        return 200, success_body(call, outcome)

    def authorized(self, fmt: Format, request: Request) -> bool:
        key = self.config.api_key
        h = request.headers
        if fmt == "openai":
            return h.get("authorization") == f"Bearer {key}" or h.get("api-key") == key
        if fmt == "anthropic":  # recent SDKs send the key as a Bearer token
            return h.get("x-api-key") == key or h.get("authorization") == f"Bearer {key}"
        return h.get("x-goog-api-key") == key or request.query.get("key") == key

    def _draw_error(self) -> str | None:
        errors = self.config.errors
        roll = self.rng.random()
        for kind in ERROR_KINDS:
            share = getattr(errors, kind)
            if roll < share:
                return kind
            roll -= share
        return None

    def _bucket(self, model: str, what: str, per_minute: int) -> Bucket:
        bucket = self.buckets.get((model, what))
        if bucket is None:
            bucket = Bucket(per_minute, self.config.limits.burst_s)
            self.buckets[(model, what)] = bucket
        return bucket

    def _rate_limit(self, fmt: Format, call: Call, prompt_tokens: int, rid: str) -> Response | None:
        limits = self.config.limits
        wants: list[tuple[Bucket, float, str]] = []
        if limits.rpm:
            wants.append((self._bucket(call.model, "requests", limits.rpm), 1, "requests"))
        if limits.tpm:
            cost = prompt_tokens + call.max_tokens
            wants.append((self._bucket(call.model, "tokens", limits.tpm), cost, "tokens"))
        waits = [(bucket.wait_for(amount), bucket, what) for bucket, amount, what in wants]
        blocked = [(w, b, what) for w, b, what in waits if w > 0]
        if not blocked:
            for bucket, amount, _ in wants:
                bucket.take(amount)
            return None
        wait, bucket, what = max(blocked, key=lambda item: item[0])
        self.counts["rate_limited"] += 1
        retry = f"{wait:.3f}".rstrip("0").rstrip(".")
        info = {"model": call.model, "retry": retry, "limit": bucket.limit}
        response = self._error(fmt, "rate_limit", rid, info, retry_after=wait)
        if fmt == "openai" and what == "tokens":
            body = json.loads(response.body)
            body["error"]["type"] = "tokens"
            body["error"]["message"] = (
                f"Rate limit reached for {call.model} in organization org-fake on tokens per min "
                f"(TPM): Limit {bucket.limit}, Used {bucket.limit - bucket.remaining()}, "
                f"Requested {prompt_tokens + call.max_tokens}. Please try again in {retry}s."
            )
            response.body = json.dumps(body).encode()
        response.headers.update(self._headers(fmt, call, rid))
        return response

    def _headers(self, fmt: Format, call: Call, rid: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        limits = self.config.limits
        if fmt == "openai":
            headers["x-request-id"] = f"req_{rid}"
            headers["openai-processing-ms"] = "1"
            for what, per_minute in (("requests", limits.rpm), ("tokens", limits.tpm)):
                if per_minute:
                    bucket = self._bucket(call.model, what, per_minute)
                    headers[f"x-ratelimit-limit-{what}"] = str(per_minute)
                    headers[f"x-ratelimit-remaining-{what}"] = str(bucket.remaining())
                    headers[f"x-ratelimit-reset-{what}"] = go_duration(bucket.reset_s())
        elif fmt == "anthropic":
            headers["request-id"] = f"req_{rid}"
            for what, per_minute in (("requests", limits.rpm), ("tokens", limits.tpm)):
                if per_minute:
                    bucket = self._bucket(call.model, what, per_minute)
                    reset = datetime.now(UTC) + timedelta(seconds=bucket.reset_s())
                    prefix = f"anthropic-ratelimit-{what}"
                    headers[f"{prefix}-limit"] = str(per_minute)
                    headers[f"{prefix}-remaining"] = str(bucket.remaining())
                    headers[f"{prefix}-reset"] = reset.isoformat(timespec="seconds").replace(
                        "+00:00", "Z"
                    )
        return headers

    def _error(
        self,
        fmt: Format,
        kind: str,
        rid: str,
        info: dict[str, Any],
        retry_after: float | None = None,
    ) -> Response:
        status, body = error_body(fmt, kind, rid, **info)
        headers = {"x-request-id": f"req_{rid}"} if fmt == "openai" else {}
        if fmt == "anthropic":
            headers["request-id"] = f"req_{rid}"
        if retry_after is not None and fmt != "gemini":  # Gemini says it in the body
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
            if fmt == "openai":
                headers["retry-after-ms"] = str(round(retry_after * 1000))
        if kind == "quota" and fmt == "anthropic":
            headers["x-should-retry"] = "false"
        return Response.json(status, body, headers)

    async def _hang(
        self, fmt: Format, request: Request, rid: str, info: dict[str, Any]
    ) -> Response:
        deadline = time.monotonic() + self.config.errors.hang_s
        while time.monotonic() < deadline and not request.disconnected():
            await asyncio.sleep(0.05)
        return self._error(fmt, "timeout", rid, info)

    def _latency_ms(self, request: Request) -> tuple[float, float]:
        """(before the first token, per output token); `x-fake-latency-ms` forces the whole."""
        forced = request.headers.get("x-fake-latency-ms")
        if forced is not None:
            return float(forced), 0.0
        return self._sample_latency(), self.config.latency.per_output_token_ms

    def _sample_latency(self) -> float:
        lat = self.config.latency
        if lat.distribution == "fixed":
            ms = lat.ms
        elif lat.distribution == "uniform":
            ms = self.rng.uniform(lat.ms * (1 - lat.spread), lat.ms * (1 + lat.spread))
        elif lat.distribution == "normal":
            ms = self.rng.gauss(lat.ms, lat.ms * lat.spread)
        elif lat.distribution == "lognormal":
            ms = lat.ms * math.exp(self.rng.gauss(0.0, lat.spread))
        else:
            ms = self.rng.expovariate(1.0 / lat.ms) if lat.ms > 0 else 0.0
        return min(lat.max_ms, max(lat.min_ms, ms))

    def _answer(self, call: Call, prompt_tokens: int, rid: str, empty: bool) -> Outcome:
        use = self.cache.use(call, prompt_tokens) if self.config.simulate_cache else CacheUse()
        outcome = compose(self.config, call, prompt_tokens, use, rid, empty)
        self.counts["prompt_tokens"] += outcome.prompt_tokens
        self.counts["output_tokens"] += outcome.output_tokens
        return outcome
