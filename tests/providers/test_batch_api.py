"""The batch clients against a real fake server: round trips for OpenAI and Anthropic, errors
inside a batch, expiry with partial results, cancel, and crash recovery with `find`."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from providers.batch_api import (
    BatchClient,
    BatchRequest,
    BatchResult,
    BatchStatus,
    BatchStillUnknown,
    anthropic_batch,
    custom_id_for,
    get_batch_client,
)
from providers.fake_server import (
    AnswerConfig,
    BatchConfig,
    ErrorsConfig,
    FakeServerConfig,
    running_fake_server,
)
from routing.deployments import Deployment
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    Message,
    ProviderError,
)
from tests.helpers.net import run_closing_client as run

KEY = "sk-fake-key-for-tests-000000"  # what conftest puts in the key variables
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}


def post(url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b"")) as r:
        return json.loads(r.read())


def stats(url: str) -> Any:
    with urllib.request.urlopen(f"{url}/_stats") as r:
        return json.loads(r.read())["batches"]


def config(**errors: float) -> FakeServerConfig:
    return FakeServerConfig(
        api_key=KEY,
        answer=AnswerConfig(mode="echo"),
        batch=BatchConfig(processing_s=0.2),
        errors=ErrorsConfig(**errors),
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_fake_server(config()) as base:
        yield base


def deployment(provider: str, base: str) -> Deployment:
    api_base = f"{base}/v1" if provider == "openai" else base
    return Deployment(provider=provider, model=MODELS[provider], api_base=api_base)


def items(provider: str, marker: str, n: int) -> list[BatchRequest]:
    return [
        BatchRequest(
            custom_id_for(marker, i, 0),
            CompletionRequest(
                deployment="d",
                model=MODELS[provider],
                messages=[Message(role="user", content=f"answer number {i}")],
                max_output_tokens=50,
            ),
        )
        for i in range(n)
    ]


async def submit(
    client: BatchClient, dep: Deployment, batch: list[BatchRequest], marker: str
) -> str:
    file_id = await client.prepare(batch, dep, marker)
    return await client.create(batch, dep, marker, file_id)


async def wait_ended(client: BatchClient, dep: Deployment, provider_id: str) -> BatchStatus:
    for _ in range(100):
        status = await client.status(dep, provider_id)
        if status.ended:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("batch did not end")


async def round_trip(
    provider: str, base: str, marker: str, n: int
) -> tuple[BatchStatus, list[BatchResult]]:
    client, dep = get_batch_client(provider), deployment(provider, base)
    provider_id = await submit(client, dep, items(provider, marker, n), marker)
    status = await wait_ended(client, dep, provider_id)
    return status, await client.results(dep, status)


PROVIDERS = pytest.mark.parametrize("provider", ["openai", "anthropic"])


@PROVIDERS
def test_round_trip_maps_custom_ids_to_text_and_usage(url: str, provider: str) -> None:
    marker = f"rt{provider}"
    status, results = run(round_trip(provider, url, marker, 5))
    assert status.status == ("completed" if provider == "openai" else "ended")
    assert status.output_ref and status.error_ref is None
    by_id = {r.custom_id: r.outcome for r in results}
    assert sorted(by_id) == sorted(custom_id_for(marker, i, 0) for i in range(5))
    for i in range(5):
        outcome = by_id[custom_id_for(marker, i, 0)]
        assert isinstance(outcome, CompletionResult)
        assert outcome.text == f"answer number {i}"  # echo mode
        assert outcome.usage.input_tokens > 0 and outcome.usage.output_tokens == 4
        assert outcome.request_id and not outcome.usage.estimated
    if provider == "openai":
        assert status.counts == {"total": 5, "completed": 5, "failed": 0}
    else:
        assert status.counts["succeeded"] == 5 and status.counts["processing"] == 0


@PROVIDERS
def test_errors_inside_a_batch_become_provider_errors(provider: str) -> None:
    with running_fake_server(config(server_error=0.3, empty_content=0.2)) as base:
        status, results = run(round_trip(provider, base, "errs", 30))
    assert len(results) == 30
    errors = [r.outcome for r in results if isinstance(r.outcome, ProviderError)]
    kinds = {e.error_class for e in errors}
    assert ErrorClass.TRANSIENT in kinds  # the 500s, classified as an HTTP 500 would be
    assert ErrorClass.BAD_RESPONSE in kinds  # empty content: billed, like an immediate call
    assert all(
        e.billed_usage is not None for e in errors if e.error_class is ErrorClass.BAD_RESPONSE
    )
    assert all(e.billed_usage is None for e in errors if e.error_class is ErrorClass.TRANSIENT)
    assert 0 < len(errors) < 30
    assert sum(isinstance(r.outcome, CompletionResult) for r in results) == 30 - len(errors)
    if provider == "openai":
        assert status.error_ref is not None


@PROVIDERS
def test_expired_batch_gives_partial_results(url: str, provider: str) -> None:
    async def scenario() -> tuple[BatchStatus, list[BatchResult]]:
        client, dep = get_batch_client(provider), deployment(provider, url)
        provider_id = await submit(client, dep, items(provider, "exp", 4), "exp")
        await asyncio.to_thread(post, f"{url}/_batches/{provider_id}/expire?processed=0.5")
        status = await client.status(dep, provider_id)
        return status, await client.results(dep, status)

    status, results = run(scenario())
    assert status.ended and status.status == ("expired" if provider == "openai" else "ended")
    outcomes = {r.custom_id: r.outcome for r in results}
    assert len(outcomes) == 4
    assert [outcomes[custom_id_for("exp", i, 0)] is None for i in range(4)] == [
        False,
        False,
        True,
        True,
    ]
    assert all(isinstance(outcomes[custom_id_for("exp", i, 0)], CompletionResult) for i in (0, 1))


@PROVIDERS
def test_expire_fraction_config_expires_the_last_share(provider: str) -> None:
    cfg = config()
    cfg.batch.expire_fraction = 0.25
    with running_fake_server(cfg) as base:
        _, results = run(round_trip(provider, base, "frac", 8))
    missing = sorted(r.custom_id for r in results if r.outcome is None)
    assert missing == [custom_id_for("frac", i, 0) for i in (6, 7)]


@PROVIDERS
def test_cancel(url: str, provider: str) -> None:
    async def scenario() -> tuple[BatchStatus, list[BatchResult]]:
        client, dep = get_batch_client(provider), deployment(provider, url)
        provider_id = await submit(client, dep, items(provider, "cxl", 3), "cxl")
        await client.cancel(dep, provider_id)
        status = await wait_ended(client, dep, provider_id)
        return status, await client.results(dep, status)

    status, results = run(scenario())
    assert status.status == ("cancelled" if provider == "openai" else "ended")
    if provider == "anthropic":
        assert status.counts["canceled"] == 3
    assert len(results) == 3 and all(r.outcome is None for r in results)


@PROVIDERS
def test_find_recovers_a_forgotten_batch(url: str, provider: str) -> None:
    async def scenario() -> tuple[str, str | None, str | None]:
        client, dep = get_batch_client(provider), deployment(provider, url)
        since = datetime.now(UTC)
        marker = f"lost{provider}"
        provider_id = await submit(client, dep, items(provider, marker, 3), marker)
        if provider == "anthropic":  # find reads the custom_ids once the batch has ended
            await wait_ended(client, dep, provider_id)
        found = await client.find(dep, marker, since, 3)
        unknown = await client.find(dep, "nosuchmarker", since, 3)
        return provider_id, found, unknown

    provider_id, found, unknown = run(scenario())
    assert found == provider_id
    assert unknown is None


def test_anthropic_find_pages_back_and_a_match_wins_over_running_candidates() -> None:
    async def scenario() -> tuple[str, str | None]:
        client, dep = get_batch_client("anthropic"), deployment("anthropic", base)
        since = datetime.now(UTC)
        first = await submit(client, dep, items("anthropic", "old", 2), "old")
        for i in range(3):  # newer running batches of the same size, on earlier pages
            await submit(client, dep, items("anthropic", f"new{i}", 2), f"new{i}")
        await asyncio.to_thread(post, f"{base}/_batches/{first}/finish")
        anthropic_batch.PAGE = 1
        try:
            return first, await client.find(dep, "old", since, 2)
        finally:
            anthropic_batch.PAGE = 100

    with running_fake_server(config()) as base:
        first, found = run(scenario())
    assert found == first


def test_anthropic_find_unmatched_running_candidate_is_unknown(url: str) -> None:
    async def scenario() -> None:
        client, dep = get_batch_client("anthropic"), deployment("anthropic", url)
        since = datetime.now(UTC)
        await submit(client, dep, items("anthropic", "someoneelse", 7), "someoneelse")
        with pytest.raises(BatchStillUnknown):
            await client.find(dep, "mine", since, 7)
        assert await client.find(dep, "mine", since, 6) is None  # other sizes are not candidates

    run(scenario())


def test_openai_one_model_per_file_fails_the_batch(url: str) -> None:
    async def scenario() -> BatchStatus:
        client, dep = get_batch_client("openai"), deployment("openai", url)
        batch = items("openai", "mixed", 2)
        other = batch[1].request.model_copy(update={"model": "gpt-4o"})
        batch[1] = BatchRequest(batch[1].custom_id, other)
        provider_id = await submit(client, dep, batch, "mixed")
        return await client.status(dep, provider_id)

    status = run(scenario())
    assert status.ended and status.status == "failed"
    assert status.failed_reason and "mismatched_model" in status.failed_reason
    assert "line 2" in status.failed_reason
    assert run(get_batch_client("openai").results(deployment("openai", url), status)) == []


def test_anthropic_bad_custom_id_is_a_permanent_error(url: str) -> None:
    client, dep = get_batch_client("anthropic"), deployment("anthropic", url)
    bad = items("anthropic", "x", 1)[0]
    for custom_id in ("has space", "x" * 65):
        with pytest.raises(ProviderError) as info:
            run(client.create([BatchRequest(custom_id, bad.request)], dep, "x", None))
        assert info.value.error_class is ErrorClass.PERMANENT and info.value.status_code == 400
        assert "custom_id" in info.value.message
    with pytest.raises(ProviderError, match="duplicate"):
        run(client.create([bad, bad], dep, "x", None))


@PROVIDERS
def test_wrong_key_is_permanent_and_redacted(
    url: str, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    monkeypatch.setenv(env, "sk-wrong-key-0123456789")
    client, dep = get_batch_client(provider), deployment(provider, url)
    with pytest.raises(ProviderError) as info:
        run(client.status(dep, "batch_x"))
    assert info.value.status_code == 401 and info.value.error_class is ErrorClass.PERMANENT
    assert "sk-wrong-key" not in info.value.message


def test_unreachable_server_is_transient() -> None:
    dep = deployment("openai", "http://127.0.0.1:9")
    with pytest.raises(ProviderError) as info:
        run(get_batch_client("openai").status(dep, "batch_x"))
    assert info.value.error_class is ErrorClass.TRANSIENT and info.value.billed_usage is None


def test_stats_count_each_custom_id_once(url: str) -> None:
    before = stats(url)
    run(round_trip("openai", url, "once", 3))
    run(round_trip("anthropic", url, "onceA", 2))
    after = stats(url)
    for cid in [custom_id_for("once", i, 0) for i in range(3)] + [
        custom_id_for("onceA", i, 0) for i in range(2)
    ]:
        assert after["custom_ids"][cid] == 1
    assert after["requests"]["openai"] - before["requests"]["openai"] == 3
    assert after["requests"]["anthropic"] - before["requests"]["anthropic"] == 2
    assert after["files_uploaded"] - before["files_uploaded"] == 1
    assert after["created"]["anthropic"] - before["created"]["anthropic"] == 1


@PROVIDERS
def test_encode_is_the_wire_form(provider: str) -> None:
    client, dep = get_batch_client(provider), deployment(provider, "http://x")
    item = items(provider, "enc", 1)[0]
    line = json.loads(client.encode(item, dep))
    assert line["custom_id"] == item.custom_id
    body = line["body"] if provider == "openai" else line["params"]
    assert body["model"] == MODELS[provider] and body["messages"][0]["content"] == "answer number 0"
    if provider == "openai":
        assert line["url"] == "/v1/chat/completions" and line["method"] == "POST"
        assert client.encode(item, dep).endswith(b"\n")
