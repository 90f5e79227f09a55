"""The fake server's batch APIs as the official SDKs see them (openai: files + batches;
anthropic: messages.batches), plus server-side validation, listing and reset."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from providers.fake_server import (
    AnswerConfig,
    BatchConfig,
    FakeServerConfig,
    running_fake_server,
)
from tests.providers.conftest import SDK_KEY as KEY


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    config = FakeServerConfig(
        api_key=KEY, answer=AnswerConfig(mode="echo"), batch=BatchConfig(processing_s=0.2)
    )
    with running_fake_server(config) as base:
        yield base


def line(custom_id: str, text: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def upload(oai: openai.OpenAI, rows: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    uploaded = oai.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    assert uploaded.bytes == len(data) and uploaded.purpose == "batch"
    assert oai.files.content(uploaded.id).content == data  # the multipart split is exact
    return uploaded.id


def test_openai_sdk_batch_round_trip(oai: openai.OpenAI) -> None:
    file_id = upload(oai, [line("a-1", "first text"), line("a-2", "second text")])
    batch = oai.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"batchrouter_id": "sdk"},
    )
    assert batch.status == "validating" and batch.metadata == {"batchrouter_id": "sdk"}
    assert oai.batches.retrieve(batch.id).status == "in_progress"
    time.sleep(0.25)
    done = oai.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 2
    assert done.output_file_id
    rows = [json.loads(x) for x in oai.files.content(done.output_file_id).text.splitlines()]
    by_id = {r["custom_id"]: r for r in rows}
    assert set(by_id) == {"a-1", "a-2"}
    assert by_id["a-1"]["response"]["status_code"] == 200 and by_id["a-1"]["error"] is None
    body = openai.types.chat.ChatCompletion.model_validate(by_id["a-1"]["response"]["body"])
    assert body.choices[0].message.content == "first text" and body.usage is not None
    listed = oai.batches.list(limit=1)
    assert listed.data[0].id == batch.id and listed.has_more in (True, False)


def test_openai_sdk_list_pages_newest_first(oai: openai.OpenAI) -> None:
    ids = []
    for i in range(3):
        file_id = upload(oai, [line(f"p{i}", "x")])
        ids.append(
            oai.batches.create(
                input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
            ).id
        )
    first = oai.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    second = oai.batches.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == ids[0]


def test_openai_validation_fails_the_batch(oai: openai.OpenAI) -> None:
    rows = [line("d", "x"), line("d", "y"), {"custom_id": "e", "method": "GET", "url": "/v1/x"}]
    file_id = upload(oai, rows)
    batch = oai.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.failed_at and batch.errors is not None
    codes = {(e.code, e.line) for e in batch.errors.data or []}
    assert ("duplicate_custom_id", 2) in codes and ("invalid_method", 3) in codes
    assert ("invalid_url", 3) in codes


def test_openai_sdk_cancel(oai: openai.OpenAI) -> None:
    file_id = upload(oai, [line("c-1", "x")])
    batch = oai.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert oai.batches.cancel(batch.id).status == "cancelling"
    done = oai.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.output_file_id is None and done.error_file_id
    row = json.loads(oai.files.content(done.error_file_id).text)
    assert row["response"] is None and row["error"]["code"] == "batch_cancelled"


def test_anthropic_sdk_batch_round_trip(ant: anthropic.Anthropic) -> None:
    params = {"model": "claude-3-5-haiku-latest", "max_tokens": 50}
    batch = ant.messages.batches.create(
        requests=[
            {
                "custom_id": "m-1",
                "params": {**params, "messages": [{"role": "user", "content": "hi there"}]},
            },  # type: ignore[typeddict-item]
            {"custom_id": "m-2", "params": {"model": "claude-3-5-haiku-latest", "messages": []}},  # type: ignore[typeddict-item]
        ]
    )
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 2
    time.sleep(0.25)
    done = ant.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.ended_at is not None
    assert done.request_counts.succeeded == 1 and done.request_counts.errored == 1
    results = {r.custom_id: r.result for r in ant.messages.batches.results(batch.id)}
    ok, bad = results["m-1"], results["m-2"]
    assert ok.type == "succeeded" and ok.message.content[0].text == "hi there"  # type: ignore[union-attr]
    assert bad.type == "errored" and bad.error.error.type == "invalid_request_error"  # type: ignore[union-attr]
    assert ant.messages.batches.list(limit=1).data[0].id == batch.id


def test_anthropic_sdk_cancel_and_bad_ids(ant: anthropic.Anthropic) -> None:
    params = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    batch = ant.messages.batches.create(requests=[{"custom_id": "k", "params": params}])  # type: ignore[list-item]
    assert ant.messages.batches.cancel(batch.id).processing_status == "canceling"
    done = ant.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.request_counts.canceled == 1
    assert [r.result.type for r in ant.messages.batches.results(batch.id)] == ["canceled"]
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        ant.messages.batches.create(requests=[{"custom_id": "a b", "params": params}])  # type: ignore[list-item]


def test_limits_and_auth_and_reset(url: str) -> None:
    config = FakeServerConfig(batch=BatchConfig(anthropic_max_requests=2, openai_max_requests=1))
    with running_fake_server(config) as base:
        client = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
        params = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        reqs = [{"custom_id": f"r{i}", "params": params} for i in range(3)]
        with pytest.raises(anthropic.BadRequestError, match="at most 2"):
            client.messages.batches.create(requests=reqs)  # type: ignore[arg-type]
        oai = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        file_id = upload(oai, [line("o1", "x"), line("o2", "x")])
        batch = oai.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "failed" and "too_many_tasks" in str(batch.errors)
        urllib.request.urlopen(urllib.request.Request(f"{base}/_reset", method="POST"))
        with pytest.raises(openai.NotFoundError):
            oai.batches.retrieve(batch.id)
        with urllib.request.urlopen(f"{base}/_stats") as r:
            assert json.loads(r.read())["batches"]["files_uploaded"] == 0
    wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.batches.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=url, api_key="sk-wrong", max_retries=0).messages.batches.list()
