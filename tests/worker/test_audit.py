"""Audit sampling through real workers on Redis and PostgreSQL, and the report's quality
figures against values worked out by hand (the table is tests/worker/test_cascades.py's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from batchrouter.api import submit_batch, wait_for_batch
from batchrouter.reports.terminal import print_report
from ledger.db import session_scope
from ledger.models import Attempt, Item
from ledger.money import money
from ledger.report import build_report
from routing.audit import Audit, audited
from tests.helpers.workers import running_workers
from tests.worker.test_cascades import ANSWERS, COST, MODELS, write_table

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(300)]

ROUTING = """\
deployments:
{deployments}
tiers:
  - {{name: t_a, deployments: [a]}}
  - {{name: t_p, deployments: [p]}}
task_types:
  mcq:
    prompt: "Answer x, y or z: {{text}}"
    checks: [{{kind: label, labels: [x, y, z]}}]
    ladder: [t_a, {{tier: t_p, accept: {{best_effort: true}}}}]
    audit: {{rate: 0.5, seed: 13}}
    quality_target: 0.97
"""
SAMPLE = ["i1", "i5", "i6", "i7"]  # audited(rate 0.5, seed 13), checked below


def test_an_audit_sample_measures_the_accepted_answers(
    tmp_path: Path, postgres_url: str, redis_url: str, use_ledger
) -> None:
    assert [i for i in ANSWERS if audited(Audit(rate=0.5, seed=13), i)] == SAMPLE
    use_ledger(postgres_url)
    table, _gold = write_table(tmp_path)
    # No `expected`: only the audit can judge the answers.
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(json.dumps({"id": i, "text": f"question {i}"}) + "\n" for i in ANSWERS)
    )
    deployments = "\n".join(
        f"  {name}: {{provider: replay, model: {model}, replay_file: {table}, "
        f"prices: {{input: 1, output: 1}}}}"
        for name, model in MODELS.items()
    )
    config = tmp_path / "audit.yaml"
    config.write_text(ROUTING.format(deployments=deployments))
    with running_workers(
        ["t_a", "t_p"], database_url=postgres_url, broker_url=redis_url, log_dir=tmp_path,
        config=config,
    ):  # fmt: skip
        submitted = submit_batch(items, "mcq", config=config)
        assert wait_for_batch(submitted.batch_id, timeout=120).finished

    with session_scope() as session:
        rows = session.scalars(select(Item).where(Item.batch_id == submitted.batch_id)).all()
        audits = session.scalars(
            select(Attempt).where(
                Attempt.batch_id == submitted.batch_id, Attempt.outcome == "audit"
            )
        ).all()
        # Every item is accepted on the cheap rung with a's answer: the audit changes nothing.
        assert {r.external_id: (r.state, r.tier) for r in rows} == {
            i: ("succeeded", "t_a") for i in ANSWERS
        }
        ids = {r.id: r.external_id for r in rows}
        assert sorted(ids[a.item_id] for a in audits) == SAMPLE
        assert all(a.tier == "t_p" and a.deployment == "p" for a in audits)
        assert sum(a.cost_usd for a in audits) == money(4 * COST["p"])
        report = build_report(session, submitted.batch_id)

    # a vs the premium (audit) answer: i1 x/X agree, i5 x/Y differ, i6 z/Z agree, i7 X./X agree
    quality = report.quality
    assert quality is not None
    cheap, premium = quality.rungs
    assert (cheap.tier, cheap.accepted, cheap.sampled, cheap.right) == ("t_a", 8, 4, 3)
    assert (cheap.low, cheap.high) == pytest.approx((0.3006, 0.9544), abs=1e-4)  # Wilson 3/4
    assert cheap.below_target and quality.flagged == ["t_a"]  # 95.4% < the 97% target
    assert (premium.accepted, premium.sampled, premium.reference) == (0, 0, True)
    assert quality.estimated_accuracy == pytest.approx(0.75)
    assert (quality.audit_calls, quality.audit_cost_usd) == (4, money(0.2))
    # The cost includes the audit: 8 cheap calls and 4 audit calls.
    assert report.cost_usd == money(8 * COST["a"] + 4 * COST["p"])
    assert report.as_dict()["quality"]["rungs"][0]["right"] == 3

    console = Console(record=True, width=160)
    print_report(report, console)
    shown = console.export_text()
    assert "30.1% - 95.4% BELOW TARGET" in shown
    assert "audit -$0.2000 (4 audit calls)" in shown  # its own line of the saving split
    assert (report.audit_calls, report.audit_cost_usd) == (4, money(0.2))
    assert "estimated accuracy 75.0%; target 97.0%; audit 50% to t_p: 4 calls, $0.2000" in shown
    # The funnel is the route's: the audit calls are not escalations.
    tiers = {line.tier: line for line in report.by_tier}
    assert (tiers["t_a"].items_received, tiers["t_a"].resolved, tiers["t_a"].escalated) == (8, 8, 0)
