"""`batchrouter fit` and `advise` over a recorded history (tests/helpers/learning_data.py):
the fitted rules keep the error bound on unseen items at a fraction of the premium model's
cost, the artefact is named by its hash, and a batch replays under an older artefact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchrouter.cli import app
from batchrouter.evaluate import evaluate_files
from providers import replay
from routing.config import parse_config
from routing.learned import artefact
from tests.helpers.learning_data import CHEAP_COST, PREMIUM_COST, write_history

pytest.importorskip("sklearn")


@pytest.fixture(autouse=True)
def fresh_caches():  # type: ignore[no-untyped-def]
    replay.clear_cache()
    artefact.clear_cache()
    yield
    replay.clear_cache()
    artefact.clear_cache()


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def held_out_items(folder: Path, fitted: Path) -> Path:
    """The items the fit did not see, as an items file (the split is in the artefact's seed)."""
    from batchrouter.learning.fit import split
    from batchrouter.learning.sources import from_table

    source = from_table(
        folder / "routing.yaml", "mcq", folder / "answers.jsonl", folder / "items.jsonl"
    )
    _train, _calibration, unseen = split(source.history, 0.3, 0)
    path = folder / "unseen.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": h.item.external_id, "text": h.item.text, "expected": h.item.expected})
            + "\n"
            for h in unseen
        )
    )
    return path


def test_fit_keeps_the_bound_on_unseen_items_for_less_than_the_premium_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    routing, table, items = write_history(tmp_path)
    out = run(
        "fit", "mcq", "--config", str(routing), "--replay", str(table), "--items", str(items),
        "--alpha", "0.05", "--delta", "0.1", "--write", "fitted.yaml",
    )  # fmt: skip
    assert "rung t_cheap: accept router >=" in out
    proposed = parse_config((tmp_path / "fitted.yaml").read_text())
    ref = proposed.task_type("mcq").router
    assert ref is not None and Path(ref.file).is_file()
    assert ref.sha256 == artefact.sha256_of(ref.file)  # the file is named by its hash too
    assert ref.sha256[:12] in ref.file

    unseen = held_out_items(tmp_path, Path(ref.file))
    result = evaluate_files(tmp_path / "fitted.yaml", "mcq", unseen)
    fitted, premium = result.row("cascade"), result.row("premium")
    fixed = evaluate_files(routing, "mcq", unseen).row("cascade")
    accepted_cheap = [t for t in fitted.tiers if t.tier == "t_cheap"][0]
    # The fixed rules accept every well-formed cheap label: about 30% wrong.
    assert fixed.accuracy is not None and fixed.accuracy < 0.75
    # Fitted: close to premium's accuracy, at well under its cost.
    assert fitted.accuracy is not None and premium.accuracy is not None
    assert fitted.accuracy >= premium.accuracy - 0.02
    assert (
        fitted.cost_usd < 0.7 * premium.cost_usd == pytest.approx(0.7 * PREMIUM_COST * fitted.items)
    )
    assert accepted_cheap.reached > 0 and fitted.cost_usd > CHEAP_COST * fitted.items


def test_the_lsa_router_backend_fits_offline_and_keeps_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--router-backend lsa`: an LSA embedding fitted on the history itself (no download);
    the fitted rules keep premium's accuracy on unseen items at well under its cost."""
    monkeypatch.chdir(tmp_path)
    routing, table, items = write_history(tmp_path)
    out = run(
        "fit", "mcq", "--config", str(routing), "--replay", str(table), "--items", str(items),
        "--alpha", "0.05", "--delta", "0.1", "--router-backend", "lsa", "--write", "lsa.yaml",
    )  # fmt: skip
    assert "-dimension LSA embedding + logistic regression" in out
    ref = parse_config((tmp_path / "lsa.yaml").read_text()).task_type("mcq").router
    assert ref is not None
    assert json.loads(Path(ref.file).read_text())["router"]["kind"] == "lsa-logreg"
    unseen = held_out_items(tmp_path, Path(ref.file))
    result = evaluate_files(tmp_path / "lsa.yaml", "mcq", unseen)
    fitted, premium = result.row("cascade"), result.row("premium")
    assert fitted.accuracy is not None and premium.accuracy is not None
    assert fitted.accuracy >= premium.accuracy - 0.02
    assert fitted.cost_usd < 0.7 * premium.cost_usd
    bad = CliRunner().invoke(
        app,
        [
            "fit",
            "mcq",
            "--config",
            str(routing),
            "--replay",
            str(table),
            "--items",
            str(items),
            "--router-backend",
            "bert",
        ],
    )
    assert bad.exit_code == 2 and "choose from tfidf, lsa" in bad.output


def test_a_changed_artefact_is_refused_and_an_older_one_still_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    routing, table, items = write_history(tmp_path)
    common = ["--config", str(routing), "--replay", str(table), "--items", str(items)]
    run("fit", "mcq", *common, "--alpha", "0.05", "--delta", "0.1", "--write", "old.yaml")
    run(
        "fit",
        "mcq",
        *common,
        "--alpha",
        "0.1",
        "--delta",
        "0.1",
        "--seed",
        "3",
        "--write",
        "new.yaml",
    )
    old = parse_config((tmp_path / "old.yaml").read_text()).task_type("mcq").router
    new = parse_config((tmp_path / "new.yaml").read_text()).task_type("mcq").router
    assert old is not None and new is not None and old.file != new.file
    # Replaying under the older routing file (as a batch stores it) uses the older artefact.
    before = evaluate_files(tmp_path / "old.yaml", "mcq", items).row("cascade")
    again = evaluate_files(tmp_path / "old.yaml", "mcq", items).row("cascade")
    assert (before.cost_usd, before.correct) == (again.cost_usd, again.correct)
    # One byte changed: the hash no longer matches, and nothing is routed with it.
    Path(old.file).write_text(Path(old.file).read_text().replace('"alpha"', '"alpha" '))
    artefact.clear_cache()
    with pytest.raises(artefact.ArtefactError, match="changed since it was fitted"):
        artefact.load_artefact(old.file, old.sha256)


def test_advise_prints_replayed_effects_and_writes_the_routing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    routing, table, items = write_history(tmp_path, count=1200)
    out = run(
        "advise", "mcq", "--config", str(routing), "--replay", str(table), "--items", str(items),
        "--alpha", "0.05", "--delta", "0.1", "--write", "advised.yaml",
    )  # fmt: skip
    assert "1. use the fitted rules: cost $" in out
    assert "on 360 unseen items" in out
    assert "premium alone: cost $" in out
    assert parse_config((tmp_path / "advised.yaml").read_text()).task_type("mcq").router


def test_fit_refuses_a_history_without_right_answers(tmp_path: Path) -> None:
    routing, table, _items = write_history(tmp_path, count=50)
    bare = tmp_path / "bare.jsonl"
    bare.write_text('{"id": "q0000", "text": "no expected here"}\n')
    result = CliRunner().invoke(
        app, ["fit", "mcq", "--config", str(routing), "--replay", str(table), "--items", str(bare)]
    )
    assert result.exit_code == 2
    assert "too few to learn" in result.output


def test_agreement_among_samples_is_a_signal_and_becomes_a_consensus(tmp_path: Path) -> None:
    """Three recorded answers of the cheap model per item: their agreement is measured, and a
    fitted threshold on it is written as a consensus of the rung's own samples."""
    from batchrouter.learning.fit import Plan, proposed_routing
    from batchrouter.learning.history import from_replay
    from routing.learned.calibration import Rule
    from routing.replay_table import read_replay_table
    from routing.types import InputItem

    routing, table, _items = write_history(tmp_path, count=20)
    extra = [
        {"item_id": "q0000", "model": "m-cheap", "text": answer, "cost_usd": CHEAP_COST}
        for answer in ("z", "x")
    ]
    with table.open("a") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in extra))
    config = parse_config(routing.read_text())
    first = json.loads(table.read_text().splitlines()[0])  # q0000's first cheap answer
    item = InputItem("q0000", "customer asks", 1, expected=first["text"])
    history = from_replay(config, "mcq", read_replay_table(table), [item])
    cheap = history[0].answers["t_cheap"]
    agreeing = 1 + sum(answer == first["text"] for answer in ("z", "x"))
    assert cheap.signals["agreement"] == pytest.approx(agreeing / 3) and cheap.samples == 3
    plan = Plan(["t_cheap", "t_premium"], rules={"t_cheap": Rule("agreement", 0.66)})
    plan.samples["t_cheap"] = 3
    text = proposed_routing(routing.read_text(), "mcq", plan, "f.json", "0" * 64)
    rung = parse_config(text).task_type("mcq").ladder[0]
    consensus = rung.accept.add[0]
    assert (consensus.kind, consensus.k, consensus.m) == ("consensus", 3, 2)


def test_submit_refuses_a_routing_file_whose_artefact_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anything is written: a worker would otherwise fail every item's router check."""
    from producers.submit import submit_batch
    from routing.config import ConfigError

    monkeypatch.chdir(tmp_path)
    routing, table, items = write_history(tmp_path)
    common = ["--config", str(routing), "--replay", str(table), "--items", str(items)]
    run("fit", "mcq", *common, "--alpha", "0.05", "--delta", "0.1", "--write", "fitted.yaml")
    ref = parse_config((tmp_path / "fitted.yaml").read_text()).task_type("mcq").router
    assert ref is not None
    Path(ref.file).write_text(Path(ref.file).read_text() + " ")
    artefact.clear_cache()
    with pytest.raises(ConfigError, match="changed since it was fitted"):
        submit_batch(items, "mcq", config=tmp_path / "fitted.yaml")


ADVICE_ROUTING = """\
deployments:
  junk: {{provider: replay, model: m-junk, replay_file: {table}, prices: {{input: 1, output: 1}}}}
  mid: {{provider: replay, model: m-mid, replay_file: {table}, prices: {{input: 1, output: 1}}}}
  premium: {{provider: replay, model: m-premium, replay_file: {table}, prices: {{input: 1, output: 1}}}}
tiers:
  - {{name: t_junk, deployments: [junk]}}
  - {{name: t_premium, deployments: [premium]}}
  - {{name: t_spare, deployments: [mid]}}
task_types:
  mcq:
    prompt: "Answer x, y or z: {{text}}"
    checks: [{{kind: label, labels: [x, y, z]}}]
    cache: false
    ladder: [t_junk, {{tier: t_premium, accept: {{best_effort: true}}}}]
"""


def test_advise_finds_a_rung_to_skip_a_cheaper_model_and_the_cache(tmp_path: Path) -> None:
    """junk answers in prose 9 times in 10 (its rung accepts 10%, and costs more than the
    premium calls it saves); mid is right as often as premium at a quarter of the price; a
    third of the items repeat an earlier one. A change that is neither cheaper nor more
    accurate (junk instead of mid, say) is not advised."""
    from batchrouter.learning.advise import advise
    from routing.types import InputItem

    rows, items = [], []
    for number in range(300):
        text = f"question {number % 200}"
        items.append(InputItem(f"q{number}", text, number + 1, expected="x"))
        junk = "x" if number % 10 == 0 else "I think it is x"
        for model, answer, cost in (
            ("m-junk", junk, 0.005),
            ("m-mid", "x", 0.005),
            ("m-premium", "x", 0.02),
        ):
            rows.append({"item_id": f"q{number}", "model": model, "text": answer, "cost_usd": cost})
    table = tmp_path / "answers.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = ADVICE_ROUTING.format(table=table)
    found, current = advise(text, "mcq", table, items, None)
    lines = [a.line() for a in found]
    titles = [a.title for a in found]
    assert "skip rung t_junk" in titles, lines
    assert "use mid instead of premium" in titles, lines
    assert "turn the cache on" in titles, lines
    skip = found[titles.index("skip rung t_junk")]
    assert skip.before is not None and skip.after is not None
    # Hand-worked: now 300 x 0.005 + 270 x 0.02 = 6.90; without junk 300 x 0.02 = 6.00.
    assert skip.before.cost_usd == pytest.approx(6.90)
    assert skip.after.cost_usd == pytest.approx(6.00)
    swap = found[titles.index("use mid instead of premium")]
    assert swap.after is not None and swap.after.cost_usd == pytest.approx(
        300 * 0.005 + 270 * 0.005
    )
    assert "33% of the items repeat" in found[titles.index("turn the cache on")].line()
    assert current.row("premium").accuracy == 1.0
    assert not any("instead of mid" in title for title in titles)


def test_a_what_if_compares_only_items_whose_answers_are_all_recorded(tmp_path: Path) -> None:
    """A ledger history lacks the premium answer of items accepted cheaply. Skipping the junk
    rung would ask premium for all 10 items, but only 4 have its answer: the what-if compares
    the two rule sets on those 4 and says it left 6 out, instead of pricing 6 unknown answers
    at nothing and counting them wrong."""
    from batchrouter.learning.advise import Baseline, walk, what_if
    from batchrouter.learning.advise import replay_config as replayed
    from routing.config import parse_config
    from routing.types import InputItem

    rows, items = [], []
    for number in range(10):
        items.append(InputItem(f"q{number}", f"question {number}", number + 1, expected="x"))
        # junk: a well-formed label, wrong on the first 4 items; premium answered only those 4
        junk = "y" if number < 4 else "x"
        rows.append({"item_id": f"q{number}", "model": "m-junk", "text": junk, "cost_usd": 0.001})
        if number < 4:
            rows.append(
                {"item_id": f"q{number}", "model": "m-premium", "text": "x", "cost_usd": 0.02}
            )
    table = tmp_path / "answers.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = ADVICE_ROUTING.format(table=table)
    config = replayed(parse_config(text, resolve_code=False), table)
    now = Baseline(config, "mcq", items, walk(config, "mcq", items))
    premium_only = text.replace("ladder: [t_junk, ", "ladder: [")
    advice = what_if("skip rung t_junk", now, premium_only, table)
    assert advice is not None and advice.before is not None and advice.after is not None
    assert advice.left_out == 6
    assert advice.before.items == advice.after.items == 4
    # Hand-worked, on the 4 kept: now 4 x 0.001, all wrong; premium alone 4 x 0.02, all right.
    assert advice.before.cost_usd == pytest.approx(0.004)
    assert advice.after.cost_usd == pytest.approx(0.08)
    assert (advice.before.accuracy, advice.after.accuracy) == (0.0, 1.0)
    assert "on 4 unseen items" in advice.line() and "6 left out" in advice.line()
