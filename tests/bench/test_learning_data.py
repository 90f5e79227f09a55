"""The fitted rules on real data (bench/learning.py's sets, read in place): on the held-out
part, the share of wrong answers among those accepted below the top rung stays under alpha, and
the fitted rules beat the fixed ones on accuracy for less than the top model alone.

The data lives outside the repository (BATCHROUTER_DATA_DIR, default `shared/data` beside the
project's folder); a fresh clone does not have it, so these tests skip when it is absent. On
this project's machines, CI included, it is there and they run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import learning as bench

pytest.importorskip("sklearn")


def needs(name: str) -> None:
    if not (bench.DATA / name).is_dir():
        pytest.skip(f"{bench.DATA / name} is absent (set BATCHROUTER_DATA_DIR to the data folder)")


def fitted(paths: tuple[Path, Path, Path], task: str, alpha: float):  # type: ignore[no-untyped-def]
    from batchrouter.learning import fit as fitting
    from batchrouter.learning.sources import from_table

    config, table, gold = paths
    source = from_table(config, task, table, gold)
    ladder = ["cheap", "premium"]
    return fitting.fit(task, ladder, source.history, alpha=alpha, delta=0.05)


def top_alone(result) -> float:  # type: ignore[no-untyped-def]
    return sum(h.answers["premium"].cost_usd for h in result.held_out)


@pytest.mark.timeout(300)
def test_mmlu_router_keeps_the_bound_on_unseen_questions(tmp_path: Path) -> None:
    needs("routellm-mmlu")
    result = fitted(bench.mmlu(tmp_path), "mmlu", alpha=0.2)
    figures, fixed = result.fitted, result.fixed
    assert result.router is not None and figures.accepted_below_top > 0
    assert figures.wrong_below_top / figures.accepted_below_top <= 0.2
    assert fixed.wrong_below_top / fixed.accepted_below_top > 0.3  # every Mixtral answer
    assert figures.accuracy > fixed.accuracy + 0.05
    assert figures.cost_usd < 0.8 * top_alone(result)


@pytest.mark.timeout(300)
def test_banking77_logprob_and_router_keep_the_bound_on_unseen_tickets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs("banking77")
    monkeypatch.setenv("BATCHROUTER_SIM_TIME_SCALE", "0")
    result = fitted(bench.banking77(tmp_path, "test"), "banking", alpha=0.05)
    figures, fixed = result.fitted, result.fixed
    assert figures.wrong_below_top / figures.accepted_below_top <= 0.05
    assert figures.accuracy > fixed.accuracy + 0.05
    assert figures.cost_usd < 0.5 * top_alone(result)
