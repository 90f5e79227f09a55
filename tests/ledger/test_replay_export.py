"""A batch's attempts, exported from a SQLite ledger, replay as the same outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchrouter.evaluate import evaluate_files
from ledger.db import session_scope
from ledger.models import Attempt, Batch, Item
from ledger.replay_export import export_items, export_replay_table, main
from providers import replay
from routing.replay_table import read_replay_table

ROUTING = """\
deployments:
  small: {provider: replay, model: m-small, replay_file: outcomes.jsonl, prices: {input: 1, output: 2}}
  big: {provider: replay, model: m-big, replay_file: outcomes.jsonl, prices: {input: 10, output: 20}}
tiers:
  - {name: t0, deployments: [small]}
  - {name: t1, deployments: [big]}
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label: {text}"
    checks: [{kind: label, labels: [billing, refund]}]
"""


def attempt(item: Item, no: int, tier: str, model: str, outcome: str, output: str | None, **kw):  # type: ignore[no-untyped-def]
    return Attempt(
        item_id=item.id,
        batch_id=item.batch_id,
        attempt_no=no,
        tier=tier,
        deployment=model.removeprefix("m-"),
        provider="openai",
        model=model,
        outcome=outcome,
        output=output,
        **kw,
    )


@pytest.fixture
def ledger(use_ledger, sqlite_url: str) -> str:  # type: ignore[no-untyped-def]
    use_ledger(sqlite_url)
    with session_scope() as session:
        session.add(
            Batch(
                id="b1",
                name="nightly",
                task_type="tickets",
                config_yaml=ROUTING,
                config_source="rules.yaml",
                total=3,
            )  # fmt: skip
        )
        items = [
            Item(
                batch_id="b1",
                external_id=ext,
                line_no=n,
                text=f"ticket {ext}",
                expected=exp,
                fields={"lang": "en"},
                tier="t0",
            )  # fmt: skip
            for n, (ext, exp) in enumerate([("A", "billing"), ("B", "refund"), ("C", "refund")], 1)
        ]
        session.add_all(items)
        session.flush()
        a, b, c = items
        usage = {"input_tokens": 100, "output_tokens": 2, "cached_input_tokens": 40}
        session.add_all(
            [
                attempt(a, 1, "t0", "m-small", "passed", "billing", cost_usd=0.00011, **usage),
                attempt(b, 1, "t0", "m-small", "check_failed", "no idea", cost_usd=0.00012),
                attempt(b, 2, "t1", "m-big", "passed", "refund", cost_usd=0.0013, **usage),
                attempt(c, 1, "t0", "m-small", "error", None, error_class="transient"),
                attempt(c, 2, "t0", "m-small", "passed", "refund", cost_usd=0.0001, **usage),
            ]
        )
    return sqlite_url


def test_export_round_trip(ledger: str, tmp_path: Path) -> None:
    out = tmp_path / "outcomes.jsonl"
    with session_scope() as session:
        assert export_replay_table(session, "nightly", out) == 4  # the error is left out
        assert export_items(session, "b1", tmp_path / "gold.jsonl") == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["item_id"], r["model"], r["text"], r["outcome"]) for r in rows] == [
        ("A", "m-small", "billing", "passed"),
        ("B", "m-small", "no idea", "check_failed"),
        ("B", "m-big", "refund", "passed"),
        ("C", "m-small", "refund", "passed"),
    ]
    assert rows[0]["cached_input_tokens"] == 40 and rows[0]["cost_usd"] == pytest.approx(0.00011)
    assert rows[2]["tier"] == "t1" and rows[2]["deployment"] == "big"

    table = read_replay_table(out)
    assert table.lookup("B", "m-big").text == "refund"  # type: ignore[union-attr]
    assert table.lookup("A", "m-small").tokens == {  # type: ignore[union-attr]
        "input_tokens": 100, "output_tokens": 2, "cached_input_tokens": 40,
        "cache_write_tokens": 0, "reasoning_tokens": 0,
    }  # fmt: skip
    gold = [json.loads(line) for line in (tmp_path / "gold.jsonl").read_text().splitlines()]
    assert gold[0] == {"lang": "en", "id": "A", "text": "ticket A", "expected": "billing"}

    # The exported batch replays through the same rules to the same outcomes, at no API spend.
    (tmp_path / "routing.yaml").write_text(ROUTING)
    replay.clear_cache()
    result = evaluate_files(tmp_path / "routing.yaml", "tickets", tmp_path / "gold.jsonl")
    cascade = result.row("cascade")
    assert (cascade.correct, cascade.calls) == (3, 4)
    assert [(t.tier, t.reached, t.escalated) for t in cascade.tiers] == [("t0", 3, 1), ("t1", 1, 0)]
    replay.clear_cache()


def test_export_as_csv_and_from_the_command_line(ledger: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "outcomes.csv"
    assert main(["b1", str(out), "--items", str(tmp_path / "items.jsonl")]) == 0
    assert "wrote 4 recorded outcomes" in capsys.readouterr().err
    table = read_replay_table(out)
    assert len(table) == 4 and table.lookup("C", "m-small").text == "refund"  # type: ignore[union-attr]
    assert main(["nope", str(out)]) == 2
