"""`batchrouter evaluate`: the worker's inner loop over recorded outcomes, cascade vs each model."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchrouter.evaluate import evaluate, evaluate_files
from batchrouter.reports.evaluation import render_markdown
from producers.readers import read_items
from providers import replay
from routing.config import parse_config

ROUTING = """\
deployments:
  cheap: {provider: replay, model: m-cheap, replay_file: outcomes.jsonl, prices: {input: 1, output: 1}}
  mid: {provider: replay, model: m-mid, replay_file: outcomes.jsonl, prices: {input: 10, output: 10}}
  premium: {provider: replay, model: m-premium, replay_file: outcomes.jsonl, prices: {input: 100, output: 100}}
tiers:
  - {name: t0, deployments: [cheap]}
  - {name: t1, deployments: [mid]}
  - {name: t2, deployments: [premium]}
task_types:
  tickets:
    ladder: [t0, t1, t2]
    prompt: "Label: {text}"
    checks: [{kind: non_empty}, {kind: label, labels: [billing, refund]}]
"""

# item -> (expected, answer of cheap, mid, premium)
ANSWERS = {
    "i1": ("billing", "billing", "billing", "billing"),
    "i2": ("refund", "no idea", "Refund.", "refund"),
    "i3": ("billing", "unknown", "???", "billing"),
    "i4": ("refund", "billing", "refund", "refund"),
}
MODELS = ("m-cheap", "m-mid", "m-premium")


@pytest.fixture(autouse=True)
def fresh_cache():  # type: ignore[no-untyped-def]
    replay.clear_cache()
    yield
    replay.clear_cache()


def write_case(folder: Path) -> tuple[Path, Path]:
    (folder / "routing.yaml").write_text(ROUTING)
    rows, items = [], []
    for item_id, (expected, *answers) in ANSWERS.items():
        items.append({"id": item_id, "text": f"ticket {item_id}", "expected": expected})
        for model, answer in zip(MODELS, answers, strict=True):
            rows.append(
                {
                    "item_id": item_id,
                    "model": model,
                    "text": answer,
                    "input_tokens": 1000,
                    "output_tokens": 10,
                }
            )
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "gold.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return folder / "routing.yaml", folder / "gold.jsonl"


CHEAP, MID, PREMIUM = 1010 / 1e6, 10 * 1010 / 1e6, 100 * 1010 / 1e6  # 1000 in + 10 out tokens


def test_cascade_and_single_models_computed_by_hand(tmp_path: Path) -> None:
    routing, gold = write_case(tmp_path)
    result = evaluate_files(routing, "tickets", gold)
    assert [row.name for row in result.rows] == ["cascade", "cheap", "mid", "premium"]
    assert result.reference == "premium"

    cascade = result.row("cascade")
    # i1 right on cheap; i2 escalates once, right on mid; i3 climbs to premium, right; i4 wrong
    # but well-formed on cheap, so it passes: 3 of 4.
    assert (cascade.correct, cascade.with_expected, cascade.accuracy) == (3, 4, 0.75)
    assert cascade.cost_usd == pytest.approx(4 * CHEAP + 2 * MID + PREMIUM)
    assert cascade.cost_per_item == pytest.approx((4 * CHEAP + 2 * MID + PREMIUM) / 4)
    assert cascade.calls == 7
    flows = [(t.tier, t.reached, t.escalated, t.rate) for t in cascade.tiers]
    assert flows == [("t0", 4, 2, 0.5), ("t1", 2, 1, 0.5), ("t2", 1, 0, 0.0)]

    # Each model alone: one call per item, no checks (its answer is the final word), so every
    # item ends succeeded and the cost is what that model alone costs.
    cheap, mid, premium = result.row("cheap"), result.row("mid"), result.row("premium")
    assert (cheap.accuracy, cheap.succeeded, cheap.cost_usd) == (0.25, 4, pytest.approx(4 * CHEAP))
    assert (mid.accuracy, mid.succeeded, mid.cost_usd) == (0.75, 4, pytest.approx(4 * MID))
    assert (cheap.calls, mid.calls, premium.calls) == (4, 4, 4)
    assert (premium.accuracy, premium.cost_usd) == (1.0, pytest.approx(4 * PREMIUM))
    assert [t.rate for t in cheap.tiers] == [0.0]

    assert cascade.accuracy_pct_of_reference == pytest.approx(75.0)
    assert cascade.cost_pct_of_reference == pytest.approx(
        100 * (4 * CHEAP + 2 * MID + PREMIUM) / (4 * PREMIUM)
    )
    assert premium.accuracy_pct_of_reference == pytest.approx(100.0)
    markdown = render_markdown(result)
    assert "| cascade | m-cheap > m-mid > m-premium | 75.0% | 75.0% |" in markdown
    assert "t0 50.0% / t1 50.0%" in markdown and "premium (ref.)" in markdown


def test_missing_recorded_outcomes_fail_the_item_and_are_counted(tmp_path: Path) -> None:
    routing, gold = write_case(tmp_path)
    table = tmp_path / "outcomes.jsonl"
    kept = [
        line for line in table.read_text().splitlines() if '"i3", "model": "m-premium"' not in line
    ]
    table.write_text("\n".join(kept) + "\n")
    result = evaluate_files(routing, "tickets", gold)
    cascade = result.row("cascade")
    assert cascade.correct == 2 and cascade.missing_outcomes == 1
    assert "1 items met a call with no recorded outcome" in render_markdown(result)


@pytest.mark.parametrize(("policy", "correct"), [("wait", 4), ("fail", 3)])
def test_a_recorded_outage_does_what_the_pipeline_does_after_outage_wait_s(
    tmp_path: Path, policy: str, correct: int
) -> None:
    """i4's cheap answer was a 503: its rung is down, and a replay's outage never ends, so the
    item escalates (on_outage: wait) or fails (fail) as the pipeline's would once the wait is
    over; it is not failed as "tier exhausted"."""
    routing, gold = write_case(tmp_path)
    routing.write_text(ROUTING + f"    on_outage: {policy}\n")
    table = tmp_path / "outcomes.jsonl"
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    for row in rows:
        if (row["item_id"], row["model"]) == ("i4", "m-cheap"):
            row.update(text=None, error_class="transient", error_message="HTTP 503")
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_files(routing, "tickets", gold)
    cascade = result.row("cascade")
    assert (cascade.succeeded, cascade.correct) == (correct, correct)  # i4 right on mid


def test_cli_evaluate_prints_json_and_markdown(tmp_path: Path) -> None:
    from batchrouter.cli import app

    routing, gold = write_case(tmp_path)
    runner = CliRunner()
    args = ["evaluate", "--config", str(routing), "--type", "tickets", "--items", str(gold)]
    done = runner.invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["rows"][0]["accuracy"] == 0.75 and data["reference"] == "premium"
    markdown = runner.invoke(app, [*args, "--format", "markdown", "--no-baselines"])
    assert markdown.exit_code == 0 and markdown.stdout.count("\n| ") == 3  # header, rule, cascade
    assert "reference" not in markdown.stdout
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "cascade" in table.stdout
    bad = runner.invoke(app, [*args[:3], "--type", "nope", "--items", str(gold)])
    assert bad.exit_code == 2 and "unknown task type 'nope'" in bad.output


def test_scale_12_models_1000_items(tmp_path: Path) -> None:
    """12 models x 1,000 items: the cascade plus 12 single-model runs (about 14k item passes)."""
    names = [f"m{i:02d}" for i in range(12)]
    deployments = "\n".join(
        f"  {n}: {{provider: replay, model: {n}, replay_file: {tmp_path / 'o.jsonl'}, "
        f"prices: {{input: {0.1 * (i + 1):.1f}, output: {0.4 * (i + 1):.1f}}}}}"
        for i, n in enumerate(names)
    )
    tiers = "\n".join(f"  - {{name: {n}, deployments: [{n}]}}" for n in names)
    config = parse_config(
        f"deployments:\n{deployments}\ntiers:\n{tiers}\ntask_types:\n  t:\n"
        f"    ladder: [m00, m05, m11]\n    prompt: 'Label: {{text}}'\n"
        "    checks: [{kind: label, labels: [a, b, c, d]}]\n"
    )
    rng = random.Random(7)
    with (tmp_path / "o.jsonl").open("w") as handle:
        for item in range(1000):
            for i, name in enumerate(names):
                skill = 0.5 + 0.04 * i
                text = "a" if rng.random() < skill else rng.choice(["b", "c", "nonsense"])
                row = {"item_id": str(item), "model": name, "text": text,
                       "input_tokens": 60, "output_tokens": 2}  # fmt: skip
                handle.write(json.dumps(row) + "\n")
    (tmp_path / "gold.jsonl").write_text(
        "".join(
            json.dumps({"id": str(i), "text": f"q{i}", "expected": "a"}) + "\n" for i in range(1000)
        )
    )
    items = read_items(tmp_path / "gold.jsonl")
    started = time.perf_counter()
    result = evaluate(config, "t", items)
    elapsed = time.perf_counter() - started
    print(f"\nevaluate 12 models x 1000 items: {elapsed:.1f} s")
    assert len(result.rows) == 13 and all(row.items == 1000 for row in result.rows)
    assert result.reference == "m11"
    singles = [result.row(n).accuracy or 0.0 for n in names]
    assert singles[0] < singles[-1]


def _table(folder: Path, rows: list[dict], items: list[dict]) -> tuple[Path, Path]:
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "gold.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return folder / "outcomes.jsonl", folder / "gold.jsonl"


TWO_TIERS = """\
deployments:
  cheap: {provider: replay, model: m-cheap, replay_file: outcomes.jsonl, prices: {input: 1, output: 1}}
  premium: {provider: replay, model: m-premium, replay_file: outcomes.jsonl, prices: {input: 100, output: 100}}
tiers:
  - {name: t0, deployments: [cheap]}
  - {name: t1, deployments: [premium]}
task_types:
"""
SAMPLES = (
    TWO_TIERS
    + """\
  tickets:
    ladder:
      - tier: t0
        accept: {add: [{kind: consensus, k: 3, m: 2}]}
      - tier: t1
        accept: {best_effort: true}
    prompt: "Label: {text}"
    checks: [{kind: label, labels: [billing, refund]}]
"""
)


def test_extra_rows_of_a_replay_table_are_the_samples_of_a_consensus(tmp_path: Path) -> None:
    """Answer j of a model is the table's j-th row for it; the third is asked only when the
    first two disagree."""
    rows = [
        {"item_id": "i1", "model": "m-cheap", "text": t, "cost_usd": 0.001}
        for t in ("billing", "refund", "billing")
    ]
    rows += [
        {"item_id": "i2", "model": "m-cheap", "text": t, "cost_usd": 0.001}
        for t in ("refund", "refund", "billing")
    ]
    rows += [
        {"item_id": "i3", "model": "m-cheap", "text": t, "cost_usd": 0.001}
        for t in ("refund", "billing")  # no third row: that sample is missing
    ]
    rows += [
        {"item_id": i, "model": "m-premium", "text": "billing", "cost_usd": 0.1}
        for i in ("i1", "i2", "i3")
    ]
    items = [{"id": i, "text": i, "expected": "billing"} for i in ("i1", "i2", "i3")]
    _table(tmp_path, rows, items)
    (tmp_path / "routing.yaml").write_text(SAMPLES)
    result = evaluate_files(tmp_path / "routing.yaml", "tickets", tmp_path / "gold.jsonl")
    cascade = result.row("cascade")
    # i1: billing, refund, billing -> 2 of 3 agree on billing (3 calls, right).
    # i2: refund, refund -> decided after 2 calls (wrong). i3: refund, billing, no third row
    # (an unbilled error) -> no majority -> premium billing (3 calls + 1, right).
    assert cascade.calls == 3 + 2 + 4
    assert cascade.correct == 2 and cascade.missing_outcomes == 1
    assert cascade.cost_usd == pytest.approx(3 * 0.001 + 2 * 0.001 + 2 * 0.001 + 0.1)
    # the single-model lines list both deployments and run without the consensus
    assert [row.name for row in result.rows] == ["cascade", "cheap", "premium"]
    assert result.row("cheap").calls == 3


CODE = (
    TWO_TIERS
    + """\
  code:
    ladder:
      - tier: t0
        accept: {add: [{kind: python, function: solve}]}
      - tier: t1
        accept: {best_effort: true}
    prompt: "Write solve(): {text}"
    checks: [{kind: non_empty}]
"""
)


def test_a_recorded_score_is_the_accuracy_where_expected_cannot_judge(tmp_path: Path) -> None:
    """Code has no single right text: the table's `score` (tests passed) says if it is right."""
    good, bad = "def solve():\n    return 1\n", "def solve(:\n"
    rows = [
        {"item_id": "i1", "model": "m-cheap", "text": good, "score": 1, "cost_usd": 0.001},
        {"item_id": "i2", "model": "m-cheap", "text": good, "score": 0, "cost_usd": 0.001},
        {"item_id": "i3", "model": "m-cheap", "text": bad, "score": 0, "cost_usd": 0.001},
        {"item_id": "i3", "model": "m-premium", "text": good, "score": 1, "cost_usd": 0.1},
        {"item_id": "i1", "model": "m-premium", "text": good, "score": 1, "cost_usd": 0.1},
        {"item_id": "i2", "model": "m-premium", "text": good, "score": 0.5, "cost_usd": 0.1},
    ]
    items = [{"id": i, "text": f"task {i}"} for i in ("i1", "i2", "i3")]  # no expected
    _table(tmp_path, rows, items)
    (tmp_path / "routing.yaml").write_text(CODE)
    result = evaluate_files(tmp_path / "routing.yaml", "code", tmp_path / "gold.jsonl")
    # i1 right on cheap (1); i2 compiles on cheap but scored 0; i3 fails to compile, climbs
    # and premium's answer scores 1: 2 of 3.
    cascade = result.row("cascade")
    assert (cascade.correct, cascade.with_expected) == (2, 3)
    assert result.row("premium").correct == pytest.approx(2.5)  # 1 + 0.5 + 1


def test_a_score_outside_0_to_1_is_refused_at_its_line(tmp_path: Path) -> None:
    from routing.replay_table import ReplayTableError, read_replay_table

    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"item_id": "a", "model": "m", "text": "x"}\n{"item_id": "b", "model": "m", "text": "y", "score": 2}\n'
    )
    with pytest.raises(ReplayTableError, match=r"t.jsonl:2: score must be between 0 and 1"):
        read_replay_table(path)
