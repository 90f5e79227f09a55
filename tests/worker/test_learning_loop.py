"""The whole loop on real Redis, PostgreSQL and workers: submit a batch under hand-written
rules with audit sampling, report it, fit on its ledger, advise, and resubmit under the
fitted rules.

The history (tests/helpers/learning_data.py): a cheap model right on easy topics and often
wrong, with a well-formed label, on hard ones. The hand-written rules accept every cheap label;
a 30% audit sample also buys the premium answer for those items (routing/audit.py), which is
what lets the fit price starting an item on the premium rung. The fitted rules start hard items
there and accept a cheap answer only when the router's score proves it right often enough.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from batchrouter.api import batch_report, submit_batch, wait_for_batch
from batchrouter.cli import app
from batchrouter.evaluate import is_correct
from ledger.db import session_scope
from ledger.models import Attempt, Batch, Item
from providers import replay
from routing.config import parse_config
from routing.learned import artefact
from tests.helpers.learning_data import CHEAP_COST, PREMIUM_COST, write_history
from tests.helpers.workers import running_workers

pytest.importorskip("sklearn")


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result.output


def audit_calls(batch_id: str) -> int:
    with session_scope() as session:
        return len(
            session.scalars(
                select(Attempt.id).where(Attempt.batch_id == batch_id, Attempt.outcome == "audit")
            ).all()
        )


def figures(batch_id: str) -> tuple[int, int, float, set[str]]:
    """(items, right, cost, tiers items started on) of a finished batch (audits included in
    the cost, not in where items started)."""
    with session_scope() as session:
        items = session.scalars(select(Item).where(Item.batch_id == batch_id)).all()
        attempts = session.scalars(select(Attempt).where(Attempt.batch_id == batch_id)).all()
        first: dict[int, tuple[int, str]] = {}
        for attempt in attempts:
            if attempt.outcome == "audit":
                continue
            if attempt.item_id not in first or attempt.attempt_no < first[attempt.item_id][0]:
                first[attempt.item_id] = (attempt.attempt_no, attempt.tier)
        right = sum(
            i.state == "succeeded" and is_correct(i.output, i.expected or "") for i in items
        )
        cost = sum(float(a.cost_usd) for a in attempts)
        return len(items), right, cost, {tier for _, tier in first.values()}


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_submit_report_fit_advise_and_resubmit_under_the_fitted_rules(
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    use_ledger,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    use_ledger(postgres_url)
    monkeypatch.setenv("BATCHROUTER_BROKER_URL", redis_url)
    replay.clear_cache()
    artefact.clear_cache()
    routing, table, items = write_history(tmp_path, count=1000, audit_rate=0.3)
    out_dir = tmp_path / "fitted"
    with running_workers(
        ["t_cheap", "t_premium"],
        database_url=postgres_url,
        broker_url=redis_url,
        log_dir=tmp_path,
        config=routing,
    ):
        first = submit_batch(items, "mcq", config=routing)
        assert wait_for_batch(first.batch_id, timeout=240).finished
        report = cli("report", first.batch_id)
        assert "audit calls" in report and "Accuracy against the expected answers" in report
        quality = batch_report(first.batch_id).quality  # the per-rung quality (the lead's part)
        assert quality is not None and quality.rungs
        count, right, cost, starts = figures(first.batch_id)
        assert count == 1000 and starts == {"t_cheap"}
        audits = audit_calls(first.batch_id)
        assert 200 < audits < 400  # a 30% sample of the items, all accepted cheaply
        # Every cheap label accepted; the audits are the premium answers the fit can price.
        assert cost == pytest.approx(1000 * CHEAP_COST + audits * PREMIUM_COST)
        assert right / count < 0.8

        fitted = tmp_path / "fitted.yaml"
        out = cli(
            "fit", "mcq", "--batch", first.batch_id, "--alpha", "0.1", "--delta", "0.1",
            "--out-dir", str(out_dir), "--write", str(fitted),
        )  # fmt: skip
        assert "rung t_cheap: accept router >=" in out
        advice = cli(
            "advise", "mcq", "--batch", first.batch_id, "--alpha", "0.1", "--delta", "0.1",
            "--out-dir", str(out_dir),
        )  # fmt: skip
        # The what-if pairs the two rule sets on the unseen items whose every call has a
        # recorded answer: the fitted rules are right far more often there.
        line = next(li for li in advice.splitlines() if "use the fitted rules: cost $" in li)
        before_pct, after_pct = (
            float(p) for p in re.findall(r"accuracy ([\d.]+)% -> ([\d.]+)%", line)[0]
        )
        assert after_pct > before_pct + 5, line
        assert "left out: a call found no recorded answer" in line  # premium's, for most items
        assert "instead of" not in advice  # premium's answers are missing for most items

        ref = parse_config(fitted.read_text()).task_type("mcq").router
        # Whether starting low-scored items on the premium rung pays is the fit's choice (the
        # audit answers price it); the same ledger always gives the same choice.
        assert ref is not None
        again = cli(
            "fit", "mcq", "--batch", first.batch_id, "--alpha", "0.1", "--delta", "0.1",
            "--out-dir", str(out_dir),
        )  # fmt: skip
        assert again.splitlines()[:4] == out.splitlines()[:4]
        second = submit_batch(items, "mcq", config=fitted)
        assert wait_for_batch(second.batch_id, timeout=240).finished
        count, right_after, cost_after, starts = figures(second.batch_id)
        # Items the router scores low start on the premium rung (when the fit chose to);
        # cheap answers it does not trust climb; far more answers are right, for less than
        # the premium model alone.
        assert starts == ({"t_cheap", "t_premium"} if ref.skip_below else {"t_cheap"})
        assert right_after / count > 0.9 > right / count
        assert cost_after < 0.8 * count * PREMIUM_COST
        with session_scope() as session:  # the batch names the artefact it was routed with
            stored = session.get(Batch, second.batch_id)
            assert stored is not None and ref.sha256 in stored.config_yaml

        # A history with the premium model's answers too (the replay table: what audits
        # would collect) prices starting higher: items the router scores low skip the
        # cheap rung, and the ledger shows no cheap call for them.
        routed = tmp_path / "routed.yaml"
        cli(
            "fit", "mcq", "--config", str(routing), "--replay", str(table), "--items",
            str(items), "--alpha", "0.05", "--delta", "0.1", "--out-dir", str(out_dir),
            "--write", str(routed),
        )  # fmt: skip
        skip = parse_config(routed.read_text()).task_type("mcq").router
        assert skip is not None and skip.skip_below is not None
        third = submit_batch(items, "mcq", config=routed)
        assert wait_for_batch(third.batch_id, timeout=240).finished
        count, right_routed, cost_routed, starts = figures(third.batch_id)
        assert starts == {"t_cheap", "t_premium"}
        assert right_routed / count > 0.9 and cost_routed < 0.8 * count * PREMIUM_COST
        with session_scope() as session:
            cheap_calls = session.scalars(
                select(Attempt.item_id).where(
                    Attempt.batch_id == third.batch_id, Attempt.tier == "t_cheap"
                )
            ).all()
        assert 0 < len(set(cheap_calls)) < count  # the skipped items were never sent cheap
