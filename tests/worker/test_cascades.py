"""Routing v2 over a recorded-outcome table whose figures are worked out by hand below.

Three cascades a 30-line script would run, each written as one routing file:
  agree2     ask two cheap models; accept when they agree; else the premium model decides;
  majority3  the same, but a third (mid) model is asked only when the first two disagree, and
             its answer joins theirs (votes carry up the ladder); no majority: premium decides;
  format     a format check on the cheap rung only; the premium answers in another form.
Each must give exactly the hand-worked accuracy, cost, calls and escalation from `evaluate`
(no queue, no cache) and from real workers on Redis and PostgreSQL: with the cache off, with
it on and cold, and again with it warm (then the bill is 0 and nothing else changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from batchrouter.api import submit_batch, wait_for_batch
from batchrouter.evaluate import evaluate_files, is_correct
from ledger.db import session_scope
from ledger.models import Attempt, Item
from ledger.money import money
from providers import replay
from routing.config import ConfigError, parse_config
from tests.helpers.workers import running_workers

# The four deployments and what one call of each costs (recorded in the table's cost_usd).
COST = {"a": 0.001, "b": 0.002, "c": 0.005, "p": 0.05}
MODELS = {"a": "m-a", "b": "m-b", "c": "m-c", "p": "m-p"}
# item -> (expected, answers of a, b, c, p). The premium model writes labels capitalised.
ANSWERS = {
    "i1": ("x", "x", "x", "x", "X"),
    "i2": ("y", "y", "x", "y", "Y"),
    "i3": ("z", "x", "y", "z", "Z"),
    "i4": ("x", "y", "y", "x", "X"),
    "i5": ("y", "x", "z", "x", "Y"),
    "i6": ("z", "z", "z", "y", "Z"),
    "i7": ("x", "X.", "x", "x", "X"),
    "i8": ("y", "z", "y", "y", "X"),
}

HEAD = """\
deployments:
{deployments}
tiers:
  - {{name: t_a, deployments: [a]}}
  - {{name: t_ab, deployments: [a, b]}}
  - {{name: t_c, deployments: [c]}}
  - {{name: t_p, deployments: [p]}}
task_types:
  mcq:
    prompt: "Answer x, y or z: {{text}}"
    checks: [{{kind: label, labels: [x, y, z]}}]
    cache: {cache}
    cache_namespace: {namespace}
"""
LADDERS = {
    "agree2": """\
    ladder:
      - tier: t_ab
        accept:
          add: [{kind: consensus, deployments: [a, b], m: 2}]
      - tier: t_p
        accept: {best_effort: true}
""",
    "majority3": """\
    ladder:
      - tier: t_ab
        accept:
          add: [{kind: consensus, deployments: [a, b], m: 2}]
      - tier: t_c
        accept:
          add: [{kind: consensus, deployments: [a, b, c], m: 2}]
      - tier: t_p
        accept: {best_effort: true}
""",
    "format": """\
    ladder:
      - tier: t_a
        accept:
          add: [{kind: regex, pattern: "^[xyz]$"}]
      - t_p
""",
}
TIERS = ["t_a", "t_ab", "t_c", "t_p"]


@dataclass(frozen=True)
class Figures:
    correct: int
    cost_usd: float
    calls: int
    escalation: dict[str, tuple[int, int]]  # tier -> (items that reached it, escalated from it)


PAIR = COST["a"] + COST["b"]  # the two cheap answers
EXPECTED = {
    # agree2: a and b agree on i1, i4 (wrong: both say y), i6, i7 ("X." is x as a label):
    # 4 x (a + b). i2, i3, i5, i8 disagree and climb: 4 x (a + b + p); premium is right on
    # i2, i3, i5 and wrong on i8. Right: i1 i2 i3 i5 i6 i7 = 6 of 8. 16 + 4 calls.
    "agree2": Figures(6, 4 * PAIR + 4 * (PAIR + COST["p"]), 20, {"t_ab": (8, 4), "t_p": (4, 0)}),
    # majority3: the same four agree on the cheap rung. c is asked for i2 (y: y,x,y -> y,
    # right), i5 (x: x,z,x -> x, wrong), i8 (y: z,y,y -> y, right), i3 (z: x,y,z, no
    # majority -> premium Z, right). Right: i1 i2 i3 i6 i7 i8 = 6 of 8. 16 + 4 + 1 calls.
    "majority3": Figures(
        6,
        4 * PAIR + 3 * (PAIR + COST["c"]) + (PAIR + COST["c"] + COST["p"]),
        21,
        {"t_ab": (8, 4), "t_c": (4, 1), "t_p": (1, 0)},
    ),
    # format: a's answer passes on every item but i7 ("X." fails ^[xyz]$), which climbs to
    # premium; its "X" passes there, where the format check does not apply. Right: i1 i2 i6
    # i7 = 4 of 8. 8 + 1 calls.
    "format": Figures(4, 8 * COST["a"] + COST["p"], 9, {"t_a": (8, 1), "t_p": (1, 0)}),
}


def write_table(folder: Path) -> tuple[Path, Path]:
    rows, items = [], []
    for item_id, (expected, *answers) in ANSWERS.items():
        items.append({"id": item_id, "text": f"question {item_id}", "expected": expected})
        for name, answer in zip("abcp", answers, strict=True):
            rows.append(
                {
                    "item_id": item_id,
                    "model": MODELS[name],
                    "text": answer,
                    "input_tokens": 1000,
                    "output_tokens": 10,
                    "cost_usd": COST[name],
                }
            )
    table, gold = folder / "outcomes.jsonl", folder / "gold.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gold.write_text("".join(json.dumps(i) + "\n" for i in items))
    return table, gold


def routing_file(
    folder: Path, table: Path, strategy: str, *, cache: bool = False, namespace: str = "n"
) -> Path:
    deployments = "\n".join(
        f"  {name}: {{provider: replay, model: {model}, replay_file: {table}, "
        f"prices: {{input: 1, output: 1}}}}"
        for name, model in MODELS.items()
    )
    text = HEAD.format(deployments=deployments, cache=str(cache).lower(), namespace=namespace)
    path = folder / f"{strategy}-{namespace}-{cache}.yaml"
    path.write_text(text + LADDERS[strategy])
    return path


@pytest.fixture(autouse=True)
def fresh_tables():  # type: ignore[no-untyped-def]
    replay.clear_cache()
    yield
    replay.clear_cache()


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_evaluate_gives_the_hand_worked_figures(tmp_path: Path, strategy: str) -> None:
    table, gold = write_table(tmp_path)
    result = evaluate_files(routing_file(tmp_path, table, strategy), "mcq", gold)
    row, expected = result.row("cascade"), EXPECTED[strategy]
    assert (row.correct, row.calls) == (expected.correct, expected.calls)
    assert row.cost_usd == pytest.approx(expected.cost_usd, abs=1e-12)
    assert {t.tier: (t.reached, t.escalated) for t in row.tiers} == expected.escalation
    # Each model alone: one call per item, its answer the final word.
    premium = result.row("p")
    assert (premium.correct, premium.calls) == (7, 8)  # wrong only on i8
    assert premium.cost_usd == pytest.approx(8 * COST["p"])
    assert row.cost_pct_of_reference == pytest.approx(100 * expected.cost_usd / (8 * COST["p"]))


def test_the_format_check_on_every_rung_fails_the_premium_answer(tmp_path: Path) -> None:
    """Why the check belongs to the cheap rung: on the task type, it fails premium's "X"."""
    table, gold = write_table(tmp_path)
    path = routing_file(tmp_path, table, "format")
    text = path.read_text().replace(
        "checks: [{kind: label, labels: [x, y, z]}]",
        'checks: [{kind: label, labels: [x, y, z]}, {kind: regex, pattern: "^[xyz]$"}]',
    )
    text = text.replace(
        '          add: [{kind: regex, pattern: "^[xyz]$"}]\n', "          add: []\n"
    )
    path.write_text(text)
    row = evaluate_files(path, "mcq", gold).row("cascade")
    assert row.correct == 3 and row.succeeded == 7  # i7 now fails on the last rung


def pipeline_figures(batch_id: str, expected: dict[str, str]) -> tuple[Figures, int]:
    """The batch's figures read from the ledger, and how many of its attempts were cache hits."""
    with session_scope() as session:
        items = session.scalars(select(Item).where(Item.batch_id == batch_id)).all()
        attempts = session.scalars(select(Attempt).where(Attempt.batch_id == batch_id)).all()
        correct = sum(
            i.state == "succeeded" and is_correct(i.output, expected[i.external_id]) for i in items
        )
        reached: dict[str, set[int]] = {}
        for attempt in attempts:
            reached.setdefault(attempt.tier, set()).add(attempt.item_id)
        final = {i.id: i.tier for i in items}
        escalation = {
            tier: (len(ids), sum(final[i] != tier for i in ids)) for tier, ids in reached.items()
        }
        figures = Figures(correct, sum(a.cost_usd for a in attempts), len(attempts), escalation)
        return figures, sum(a.cache_hit for a in attempts)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_real_workers_give_the_same_figures_with_the_cache_off_cold_and_warm(
    tmp_path: Path, postgres_url: str, redis_url: str, use_ledger
) -> None:
    use_ledger(postgres_url)
    table, gold = write_table(tmp_path)
    expected_answers = {item_id: answer[0] for item_id, answer in ANSWERS.items()}
    base = routing_file(tmp_path, table, "majority3")
    with running_workers(
        TIERS, database_url=postgres_url, broker_url=redis_url, log_dir=tmp_path, config=base
    ):
        for strategy, expected in sorted(EXPECTED.items()):
            runs = [
                ("off", routing_file(tmp_path, table, strategy, cache=False)),
                ("cold", routing_file(tmp_path, table, strategy, cache=True, namespace=strategy)),
                ("warm", routing_file(tmp_path, table, strategy, cache=True, namespace=strategy)),
            ]
            for run, config in runs:
                submitted = submit_batch(gold, "mcq", config=config)
                assert wait_for_batch(submitted.batch_id, timeout=240).finished
                figures, hits = pipeline_figures(submitted.batch_id, expected_answers)
                where = f"{strategy}, cache {run}"
                assert figures.correct == expected.correct, where
                assert figures.calls == expected.calls, where
                assert figures.escalation == expected.escalation, where
                if run == "warm":  # every answer from the cache: the same path, no bill
                    assert hits == expected.calls and figures.cost_usd == 0, where
                else:
                    assert hits == 0, where
                    assert figures.cost_usd == money(expected.cost_usd), where  # exact


def test_a_rung_whose_consensus_counts_a_deployment_above_it_is_refused(tmp_path: Path) -> None:
    table, _gold = write_table(tmp_path)
    text = routing_file(tmp_path, table, "majority3").read_text()
    text = text.replace("deployments: [a, b], m: 2}]", "deployments: [a, c], m: 2}]", 1)
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "rules.yaml")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "deployments: [a, c]" in t)
    assert (
        f"rules.yaml:{line}: task_types.mcq.ladder.0.accept.add.0: task type 'mcq': the "
        "consensus on rung 't_ab' counts deployment 'c', which neither this rung nor a rung "
        "below it has (it has ['a', 'b'])"
    ) in str(raised.value)


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        (
            "    ladder:\n      - tier: t_a\n        accept: {best_effort: true}\n      - t_p\n",
            "ladder.0.accept.best_effort: task type 'mcq': only the last rung can take its "
            "answer as the final word (best_effort); 't_a' is rung 1 of 2",
        ),
        (
            "    ladder:\n      - tier: t_a\n        accept: {drop: [regex]}\n      - t_p\n",
            "ladder.0.accept.drop.0: task type 'mcq': rung 't_a' drops 'regex', which is not "
            "one of the task type's checks (['label'])",
        ),
        (
            "    ladder:\n      - tier: t_a\n        accept: {checks: [], add: [{kind: non_empty}]}\n",
            "give `checks` (replacing the task type's) or `add`/`drop`, not both",
        ),
        (
            "    ladder:\n      - tier: t_a\n        acept: {}\n",
            "unknown key 'acept'; did you mean 'accept'?",
        ),
    ],
)
def test_rung_settings_that_cannot_work_are_refused_at_their_line(
    tmp_path: Path, ladder: str, message: str
) -> None:
    table, _gold = write_table(tmp_path)
    text = routing_file(tmp_path, table, "format").read_text()
    text = text[: text.index("    ladder:")] + ladder
    with pytest.raises(ConfigError, match="rules.yaml:[0-9]+: .*" + _escaped(message)):
        parse_config(text, "rules.yaml")


def _escaped(text: str) -> str:
    import re

    return re.escape(text)
