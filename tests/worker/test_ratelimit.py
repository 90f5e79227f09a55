"""The rate limiter's arithmetic, without Redis: the in-process buckets share the Lua logic."""

from __future__ import annotations

import asyncio
import time

import httpx

from ledger.outcomes import AttemptRecord, ClaimedItem
from providers.anthropic import rate_limit_headers as anthropic_headers
from providers.openai_compat import go_duration_s, rate_limit_headers
from routing.deployments import Deployment
from routing.prices import Prices
from routing.types import CompletionResult, ErrorClass, ProviderError, Usage
from worker.middleware import CallContext
from worker.ratelimit import LocalBuckets, RateLimiter, bucket_key


def deployment(**limits: int) -> Deployment:
    return Deployment(provider="openai", model="gpt-4o-mini", api_base="http://x/v1", **limits)


def ctx(dep: Deployment, prompt: int = 100, max_out: int = 50) -> CallContext:
    item = ClaimedItem(1, "b", "1", "text", None, {}, "tier0", 0, 0.0, None, None)
    return CallContext(
        item,
        None,
        None,
        "d",
        dep,
        Prices(input=1, output=1),
        prompt,
        max_out,  # type: ignore[arg-type]
    )


def test_a_bucket_admits_its_burst_then_hands_out_future_slots() -> None:
    buckets = LocalBuckets()
    buckets.clock = lambda: 1000.0
    keys = ["k:rpm", "k:tpm"]
    # 600 RPM = 10/s; a 1 s burst holds 10 requests.
    grants = [buckets.run(keys, ["take", 1.0, 600, 0, 1, 0, 30.0]) for _ in range(12)]
    assert [g for g, _ in grants] == [1] * 12
    assert [w for _, w in grants[:10]] == [0.0] * 10
    assert 0.05 < grants[10][1] < 0.15 and 0.15 < grants[11][1] < 0.25  # one slot per 0.1 s


def test_a_wait_beyond_the_reserve_horizon_charges_nothing() -> None:
    buckets = LocalBuckets()
    buckets.clock = lambda: 1000.0
    keys = ["k:rpm", "k:tpm"]
    assert buckets.run(keys, ["take", 1.0, 60, 0, 1, 0, 0.5]) == (1, 0.0)
    granted, wait = buckets.run(keys, ["take", 1.0, 60, 0, 1, 0, 0.5])
    assert granted == 0 and 0.9 < wait <= 1.0
    granted_again, wait_again = buckets.run(keys, ["take", 1.0, 60, 0, 1, 0, 0.5])
    assert granted_again == 0 and abs(wait_again - wait) < 0.05  # nothing was taken


def test_tokens_and_requests_are_both_required_and_a_huge_call_still_fits() -> None:
    buckets = LocalBuckets()
    buckets.clock = lambda: 1000.0
    keys = ["k:rpm", "k:tpm"]
    # 6,000 TPM with a 1 s burst holds 100 tokens; a 500-token call is capped to the capacity.
    assert buckets.run(keys, ["take", 1.0, 6000, 6000, 1, 500, 30.0]) == (1, 0.0)
    _, wait = buckets.run(keys, ["take", 1.0, 6000, 6000, 1, 50, 30.0])
    assert 0.4 < wait < 0.6  # 50 tokens at 100 tokens/s


def test_settle_corrects_tokens_and_headers_only_lower_the_level() -> None:
    buckets = LocalBuckets()
    buckets.clock = lambda: 1000.0
    keys = ["k:rpm", "k:tpm"]
    buckets.run(keys, ["take", 60.0, 600, 6000, 1, 1000, 30.0])  # tpm 6000 -> 5000
    buckets.run(keys, ["settle", 60.0, 600, 6000, 500, -1, -1])  # used 500 more
    assert 4400 < buckets._buckets["k:tpm"].level <= 4510
    buckets.run(keys, ["settle", 60.0, 600, 6000, 0, 3, 10_000])  # provider: 3 requests left
    assert buckets._buckets["k:rpm"].level <= 3
    assert buckets._buckets["k:tpm"].level < 4600  # a higher remaining never raises it


def test_the_middleware_delays_calls_instead_of_failing_them() -> None:
    limiter = RateLimiter(None, burst_s=0.1, max_reserve_s=0.05, poll_s=0.05)
    assert limiter.backend == "in-process"
    dep = deployment(rpm=1200)  # 20/s; a 0.1 s burst holds 2

    async def go() -> float:
        started = time.monotonic()
        results = await asyncio.gather(*(limiter.before_call(ctx(dep)) for _ in range(8)))
        assert results == [None] * 8
        return time.monotonic() - started

    elapsed = asyncio.run(go())
    assert 0.2 < elapsed < 1.5  # 6 calls past the burst at 20/s take ~0.3 s
    assert limiter.waited_s > 0


def test_a_deployment_without_limits_never_touches_a_bucket() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1/0")  # unreachable: must not even be tried
    asyncio.run(limiter.before_call(ctx(deployment())))
    assert limiter._clients == {}


def test_after_call_corrects_with_usage_and_applies_headers() -> None:
    limiter = RateLimiter(None, burst_s=60)
    limiter.local.clock = lambda: 1000.0  # no refill between the steps
    dep = deployment(rpm=600, tpm=60_000)
    key = bucket_key(dep)
    call = ctx(dep, prompt=100, max_out=50)
    asyncio.run(limiter.before_call(call))
    tpm = limiter.local._buckets[f"{key}:tpm"]
    assert 59_840 < tpm.level <= 59_851
    record = AttemptRecord(1, "tier0", "d", "openai", "m", "passed", input_tokens=130)
    record.output_tokens = 10
    result = CompletionResult(
        text="ok", usage=Usage(input_tokens=130, output_tokens=10), rate_limit=None
    )
    asyncio.run(limiter.after_call(call, record, result))
    # OpenAI counts the prompt it saw plus the whole max_tokens: 30 more prompt tokens.
    assert 59_810 < tpm.level <= 59_821
    result.rate_limit = {"requests_remaining": 5.0, "tokens_remaining": 1000.0}
    asyncio.run(limiter.after_call(call, AttemptRecord(2, "t", "d", "p", "m", "error"), result))
    assert tpm.level <= 1000 and limiter.local._buckets[f"{key}:rpm"].level <= 5
    limited = ProviderError(ErrorClass.RATE_LIMITED, "429", retry_after_s=1)
    asyncio.run(limiter.after_call(call, AttemptRecord(3, "t", "d", "p", "m", "error"), limited))
    assert tpm.level <= 1 and limiter.local._buckets[f"{key}:rpm"].level <= 1


def test_anthropic_gives_back_unused_output_tokens() -> None:
    limiter = RateLimiter(None, burst_s=60)
    limiter.local.clock = lambda: 1000.0
    dep = Deployment(provider="anthropic", model="claude-3-5-haiku-latest", tpm=60_000)
    call = ctx(dep, prompt=100, max_out=500)
    asyncio.run(limiter.before_call(call))
    record = AttemptRecord(1, "tier0", "d", "anthropic", "m", "passed", input_tokens=100)
    record.output_tokens = 20
    result = CompletionResult(text="ok", usage=Usage(input_tokens=100, output_tokens=20))
    asyncio.run(limiter.after_call(call, record, result))
    assert limiter.local._buckets[f"{bucket_key(dep)}:tpm"].level > 59_870


def test_rate_limit_headers_are_parsed() -> None:
    headers = httpx.Headers(
        {
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "-1",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert rate_limit_headers(headers) == {
        "requests_remaining": 59.0,
        "requests_reset_s": 1.0,
        "tokens_reset_s": 360.0,
    }
    assert rate_limit_headers(httpx.Headers({})) is None
    assert go_duration_s("2s81ms") == 2.081
    parsed = anthropic_headers(
        httpx.Headers(
            {
                "anthropic-ratelimit-tokens-remaining": "900",
                "anthropic-ratelimit-tokens-reset": "2999-01-01T00:00:00Z",
            }
        )
    )
    assert parsed is not None and parsed["tokens_remaining"] == 900 and parsed["tokens_reset_s"] > 0
