"""The replay provider serves recorded outcomes by (item id, model), read once per process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers import replay
from providers.base import get_provider
from routing.deployments import Deployment
from routing.replay_table import ReplayTableError, read_replay_table
from routing.types import (
    CompletionRequest,
    ErrorClass,
    Message,
    ProviderError,
    RequestMeta,
)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    replay.clear_cache()
    yield
    replay.clear_cache()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


ROWS = [
    {"item_id": "t1", "model": "m-small", "text": "billing", "input_tokens": 120,
     "output_tokens": 3, "cached_input_tokens": 100, "logprobs": [-0.1, -0.01]},
    {"item_id": "t1", "model": "m-big", "text": "refund", "cost_usd": 0.0125},
    {"id": 2, "model": "m-small", "output": "second item", "input_tokens": 10, "output_tokens": 2},
    {"item_id": "t3", "model": "m-small", "error_class": "transient", "error_message": "503"},
    {"item_id": "t1", "model": "m-small", "text": "billing again"},
]  # fmt: skip


def call(path: Path | None, item: str, model: str = "m-small"):  # type: ignore[no-untyped-def]
    deployment = Deployment(provider="replay", model=model, replay_file=str(path) if path else None)
    request = CompletionRequest(
        deployment="d",
        model=model,
        messages=[Message(role="user", content="Label this ticket: my card was charged twice")],
        meta=RequestMeta(item_key=item),
    )
    return asyncio.run(get_provider("replay").complete(request, deployment))


def test_serves_the_recorded_answer_with_its_usage_and_logprobs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "outcomes.jsonl", ROWS)
    result = call(path, "t1")
    assert result.text == "billing"  # the first recorded answer; later ones are extra samples
    assert (result.usage.input_tokens, result.usage.output_tokens) == (120, 3)
    assert result.usage.cached_input_tokens == 100 and not result.usage.estimated
    assert result.token_logprobs == [-0.1, -0.01]
    assert result.cost_usd_override is None
    assert call(path, "2").text == "second item"  # `id` and `output` are accepted spellings
    table = replay.load_table(path)
    assert [row.text for row in table.samples("t1", "m-small")] == ["billing", "billing again"]


def test_a_recorded_cost_is_reported_and_usage_estimated(tmp_path: Path) -> None:
    result = call(write_jsonl(tmp_path / "o.jsonl", ROWS), "t1", model="m-big")
    assert result.text == "refund"
    assert result.cost_usd_override == pytest.approx(0.0125)
    assert result.usage.estimated and result.usage.input_tokens > 5


def test_a_missing_row_is_a_permanent_error_naming_item_and_model(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "o.jsonl", ROWS)
    with pytest.raises(ProviderError) as caught:
        call(path, "t9")
    assert caught.value.error_class is ErrorClass.PERMANENT
    assert caught.value.message == "no recorded outcome for item 't9' on model 'm-small'"
    with pytest.raises(ProviderError, match="no replay_file"):
        call(None, "t1")


def test_a_recorded_failure_is_replayed(tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        call(write_jsonl(tmp_path / "o.jsonl", ROWS), "t3")
    assert caught.value.error_class is ErrorClass.TRANSIENT and caught.value.message == "503"


def test_csv_tables(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "item_id,model,text,input_tokens,output_tokens,cost_usd,logprobs\n"
        't1,m-small,"billing, really",50,4,,"[-0.5]"\n'
        "t2,m-small,,50,1,0.001,\n"
    )
    first = call(path, "t1")
    assert (first.text, first.usage.input_tokens, first.token_logprobs) == (
        "billing, really",
        50,
        [-0.5],
    )
    second = call(path, "t2")
    assert second.text == "" and second.cost_usd_override == pytest.approx(0.001)


def test_each_table_is_read_once_per_process(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "o.jsonl", ROWS)
    assert call(path, "t1").text == "billing"
    write_jsonl(path, [{**ROWS[0], "text": "changed"}])
    assert call(path, "t1").text == "billing"
    assert replay.load_table(path) is replay.load_table(str(path.resolve()))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"model": "m", "text": "x"}', "o.jsonl:2: missing item_id"),
        ('{"item_id": "a", "text": "x"}', "o.jsonl:2: missing model"),
        ('{"item_id": "a", "model": "m"}', "o.jsonl:2: missing text"),
        ('{"item_id": "a", "model": "m", "text": "x", "input_tokens": "many"}', "must be a number"),
        ('{"item_id": "a", "model": "m", "text": "x", "logprobs": ["a"]}', "list of numbers"),
        ('{"item_id": "a", "model": "m", "error_class": "oops"}', "error_class 'oops'"),
        ("not json", "o.jsonl:2: not valid JSON"),
    ],
)
def test_bad_tables_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text('{"item_id": "ok", "model": "m", "text": "fine"}\n' + line + "\n")
    with pytest.raises(ReplayTableError, match=message.replace("(", r"\(")):
        read_replay_table(path)
    with pytest.raises(ProviderError, match="o.jsonl:2"):
        call(path, "ok", model="m")
