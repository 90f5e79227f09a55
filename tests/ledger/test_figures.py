"""Every figure of `status`, `report` (terminal, JSON, CSV, HTML) and the worker metrics, on a
ledger with one call of every kind (tests/helpers/figures_ledger.py), against values worked out
by hand below (issue 16: figures a finance team can sign).

Hand-worked figures of the "figures" batch (costs in USD):

  cost      f1 (0.00123 + audit 0.003) + f2 (0 + 0.0009) + f3 (0.0012 + 0.0013 + 0.0042)
            + f4 0 + f5 0 + f6 (0.0008 + 0.0015) + f7 (0.0004 + 0.00041)
            + f8 (0.0005 + 0.002 + 0.00145)
            = 0.00423 + 0.0009 + 0.0067 + 0.0023 + 0.00081 + 0.00395 = 0.01889
  attempts  2 + 2 + 3 + 1 + 1 + 2 + 2 + 3 = 16; items 8: 7 succeeded, 1 failed
  per succeeded item  0.01889 / 7 = 0.002698571428571... = 0.002698571429 (12 places)
  tokens (billed calls: the two cache hits f4, f5 are left out)
            in  1000 + 1000 (audit) + 800 + 3 x 1200 + 2 x 900 + 2 x 700 + 3 x 500 = 11100
            cached 200, cache writes 100 (f1)
            out 50 + 50 + 40 + (0 + 60 + 60) + (30 + 30) + (10 + 12) + 3 x 20 = 402,
            reasoning 20
  premium-only: one sim-premium call per item, its prompt and final answer (the audit call is
            no step of the route)
            prompts  f1 1000, f2 800 (its first call failed unbilled with 0 tokens: issue 14),
                     f3 1200, f4 1000 and f5 1000 (f1's usage, carried by the hits), f6 900,
                     f7 700, f8 500 = 7100
            answers  f1 50, f2 40, f3 60, f4 50, f5 50, f6 30, f7 10 (the judged call, not the
                     consensus sample's 12), f8 20 = 310
            (7100 x 2.50 + 310 x 10.00) / 1e6 = (17750 + 3100) / 1e6 = 0.02085
  saving    0.02085 - 0.01889 = 0.00196 (9.4%)
            cache 0.00123 x 2 = 0.00246; deferral 0.0015; audit 0.003 (spent to measure);
            routing 0.02085 - (0.01889 - 0.003 + 0.00246 + 0.0015) = 0.001;
            routing + deferral + cache - audit = 0.001 + 0.0015 + 0.00246 - 0.003 = 0.00196
  unconfirmed: f3's timeout, 1 call, 0.0012 (in the cost)
  funnel    tier0: 8 in, 11 attempts, cost 0.00123 + 0.0009 + 0.0025 + 0.0008 + 0.00081
                   + 0.0005 = 0.00674; resolved f1 f2 f4 f5 f7 = 5 (f7's last row is its
                   sample), escalated f3 f6 f8 = 3
            tier1: 3 in, 3 attempts, 0.0042 + 0.0015 + 0.002 = 0.0077; resolved 2, escalated 1
            tier2: 1 in, 1 attempt, 0.00145; failed 1 (the audit call is not in the funnel)
  latency   cache hits made no call: sim-nano 100 150 200 250 260 300 400 500 30000 (9 calls)
            p50 = 5th = 260, p95 = p99 = 9th = 30000, mean 32160 / 9; sim-premium 700, 1000
  status    8/8 done, finished; spent 0.01889 (the attempts: no budget tracked it), reserved 0
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from batchrouter.cli import app
from ledger.db import session_scope
from ledger.outcomes import AttemptRecord
from ledger.report import Report, run_report
from ledger.report_queries import ReportFilter
from tests.helpers.figures_ledger import fill_figures_ledger

D = Decimal
COST, PREMIUM, SAVING = D("0.01889"), D("0.02085"), D("0.00196")
CACHE, DEFERRAL, ROUTING, UNCONFIRMED = D("0.00246"), D("0.0015"), D("0.001"), D("0.0012")
runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def batch_id(request: pytest.FixtureRequest, use_ledger) -> str:
    use_ledger(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    return fill_figures_ledger()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def report(batch_id: str) -> Report:
    with session_scope() as session:
        return run_report(session, ReportFilter(batch_ids=(batch_id,)))


def test_money_is_exact_decimal(batch_id: str) -> None:
    r = report(batch_id)
    assert r.cost_usd == COST and isinstance(r.cost_usd, Decimal)
    assert r.cost_per_succeeded_usd == D("0.002698571429")
    assert (r.premium_only_cost_usd, r.saving_usd) == (PREMIUM, SAVING)
    assert round(r.saving_pct, 1) == 9.4
    assert (r.cache_saving_usd, r.deferral_saving_usd, r.routing_saving_usd) == (
        CACHE,
        DEFERRAL,
        ROUTING,
    )
    assert (r.items, r.succeeded, r.failed, r.pending, r.attempts) == (8, 7, 1, 0, 16)
    assert (r.cache_hits, r.deferred_calls) == (2, 1)
    assert (r.input_tokens, r.cached_input_tokens, r.output_tokens) == (11100, 200, 402)
    assert (r.audit_calls, r.audit_cost_usd) == (1, D("0.003"))
    premium = {m.deployment: m for m in r.by_model}["sim-premium"]
    assert (premium.attempts, premium.cost_usd) == (2, D("0.00445"))  # f8's call and the audit
    models = {m.deployment: m for m in report(batch_id).by_model}
    nano, mini = models["sim-nano"], models["sim-mini"]
    assert (nano.attempts, nano.passed, nano.errors, nano.cache_hits) == (11, 5, 2, 2)
    # 1000 + 800 + 1200 + 1200 + 900 + 700 + 700 + 500; 50 + 40 + 60 + 30 + 10 + 12 + 20
    assert (nano.input_tokens, nano.output_tokens, nano.cost_usd) == (7000, 222, D("0.00674"))
    # 1200 + 900 + 500 in, 60 + 30 + 20 out
    assert (mini.input_tokens, mini.output_tokens, mini.deferred_calls) == (2600, 110, 1)
    assert [(f.kind, f.name, f.count) for f in r.failure_reasons] == [
        ("check", "label", 5),
        ("error", "rate_limit", 1),
        ("error", "timeout", 1),
    ]


def test_each_grouping_counts_the_routing_saving_without_the_audit(batch_id: str) -> None:
    """`report --by batch` (or task type, project) gives a group's routing saving by the same
    rule as the batch's: the audit's 0.003 measures quality and is no step of the route."""
    with session_scope() as session:
        for by in (["batch"], ["task_type"], ["batch", "project"]):
            (group,) = run_report(session, ReportFilter(batch_ids=(batch_id,)), by=by).groups
            assert (group.cost_usd, group.premium_only_cost_usd) == (COST, PREMIUM), by
            assert group.routing_saving_usd == ROUTING, by  # not 0.001 - 0.003
            assert group.saving_usd == SAVING, by
    premium = {m.deployment: m for m in report(batch_id).by_model}["sim-premium"]
    assert premium.audit_cost_usd == D("0.003")  # of its 0.00445


def test_a_consensus_sample_does_not_hide_that_the_item_resolved(batch_id: str) -> None:
    tiers = [
        (t.tier, t.items_received, t.attempts, t.cost_usd, t.resolved, t.escalated, t.failed)
        + (t.in_progress,)
        for t in report(batch_id).by_tier
    ]
    assert tiers == [
        ("tier0", 8, 11, D("0.00674"), 5, 3, 0, 0),  # f7 resolved, not "in progress"
        ("tier1", 3, 3, D("0.0077"), 2, 1, 0, 0),
        ("tier2", 1, 1, D("0.00145"), 0, 0, 1, 0),
    ]


def test_premium_only_prices_each_prompt_and_final_answer(batch_id: str) -> None:
    # f2's first call failed unbilled (0 tokens): its prompt is its next call's 800 tokens;
    # f7's answer is its judged call's 10 tokens, not its consensus sample's 12.
    assert report(batch_id).premium_only_cost_usd == PREMIUM


def test_cache_hits_are_out_of_latency(batch_id: str) -> None:
    latency = {line.deployment: line for line in report(batch_id).latency}
    nano = latency["sim-nano"]
    assert (nano.calls, nano.p50_ms, nano.p95_ms, nano.p99_ms) == (9, 260, 30000, 30000)
    assert nano.mean_ms == pytest.approx(32160 / 9)
    assert (latency["sim-mini"].calls, latency["sim-mini"].p50_ms) == (3, 900)
    assert (latency["sim-premium"].calls, latency["sim-premium"].p50_ms) == (2, 700)


def test_cache_write_and_reasoning_tokens_are_reported(batch_id: str) -> None:
    r = report(batch_id)
    assert (r.cache_write_tokens, r.reasoning_tokens) == (100, 20)
    nano = {m.deployment: m for m in r.by_model}["sim-nano"]
    assert (nano.cache_write_tokens, nano.reasoning_tokens) == (100, 20)
    tier0 = {g.key["tier"]: g for g in r.groups}["tier0"]
    assert (tier0.cache_write_tokens, tier0.reasoning_tokens) == (100, 20)


def test_estimated_unconfirmed_calls_are_reported_apart(batch_id: str) -> None:
    r = report(batch_id)
    assert (r.unconfirmed_calls, r.unconfirmed_cost_usd) == (1, UNCONFIRMED)
    assert r.cost_usd == COST  # the conservative bound stays in the cost
    nano = {m.deployment: m for m in r.by_model}["sim-nano"]
    assert (nano.unconfirmed_calls, nano.unconfirmed_cost_usd) == (1, UNCONFIRMED)
    assert any("unconfirmed" in note for note in r.notes)


def test_status_spent_of_a_batch_without_a_budget(batch_id: str) -> None:
    table = run("status", batch_id)
    assert "budget unlimited, spent $0.0189, reserved $0.0000" in table
    assert "8/8 done - finished" in table
    shown = json.loads(run("status", batch_id, "--format", "json"), parse_float=Decimal)
    assert (shown["spent_usd"], shown["reserved_usd"], shown["budget_usd"]) == (COST, 0, None)


def test_status_state_of_a_finished_batch(batch_id: str) -> None:
    shown = json.loads(run("status", batch_id, "--format", "json"), parse_float=Decimal)
    assert (shown["total"], shown["done"], shown["finished"]) == (8, 8, True)
    assert shown["state"] == "finished"  # not "running" once every item has ended
    assert shown["by_state"] == {"succeeded": 7, "failed": 1}


def test_report_outputs(batch_id: str, tmp_path: Path) -> None:
    data = json.loads(run("report", batch_id, "--format", "json"), parse_float=Decimal)
    assert (data["cost_usd"], data["premium_only_cost_usd"], data["saving_usd"]) == (
        COST,
        PREMIUM,
        SAVING,
    )
    assert (data["cache_saving_usd"], data["deferral_saving_usd"]) == (CACHE, DEFERRAL)
    assert (data["routing_saving_usd"], data["unconfirmed_cost_usd"]) == (ROUTING, UNCONFIRMED)
    assert (data["cache_write_tokens"], data["reasoning_tokens"]) == (100, 20)
    assert data["cost_per_succeeded_usd"] == D("0.002698571429")
    assert [t["resolved"] for t in data["by_tier"]] == [5, 2, 0]

    rows = list(csv.DictReader(io.StringIO(run("report", batch_id, "--format", "csv"))))
    total = rows[-1]
    assert total["tier"] == "total"
    assert (total["cost_usd"], total["premium_only_cost_usd"], total["saving_usd"]) == (
        "0.01889",
        "0.02085",
        "0.00196",
    )
    assert (total["routing_saving_usd"], total["cache_saving_usd"]) == ("0.001", "0.00246")
    assert (total["unconfirmed_calls"], total["unconfirmed_cost_usd"]) == ("1", "0.0012")
    assert (total["cache_write_tokens"], total["reasoning_tokens"]) == ("100", "20")
    tier0 = rows[0]
    assert (tier0["tier"], tier0["cost_usd"], tier0["cost_per_succeeded_usd"]) == (
        "tier0",
        "0.00674",
        "0.001348",  # 0.00674 / 5 passed calls
    )

    page = tmp_path / "report.html"
    table = run("report", batch_id, "--html", str(page))
    assert "Total cost $0.0189; premium tier (tier2) alone would have cost $0.0209" in table
    assert "saving $0.00196 (9.4%)" in table
    assert "audit -$0.00300 (1 audit calls)" in table
    assert "of which $0.00120 estimated, unconfirmed: 1 failed calls" in table
    assert "routing $0.00100, deferral $0.00150 (1 deferred calls), cache $0.00246" in table
    assert "11,100 in (200 cached, 100 cache writes), 402 out (20 reasoning)" in table
    html = page.read_text()
    for shown in ("$0.0189", "$0.0209", "$0.00196", "$0.00120", "11,100 (200, 100)", "402 (20)"):
        assert shown in html


def test_metrics_leave_cache_hits_out_of_calls_tokens_and_latency() -> None:
    from worker.metrics import record_chunk
    from worker.pipeline import call_facts

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    tier, nano = "figures-tier0", "sim-nano"
    common = {"tier": tier, "deployment": nano, "provider": "sim", "model": nano}
    calls = [  # f1, f2, f3's timeout and f4 (the cache hit of f1) as one chunk's records
        AttemptRecord(1, **common, outcome="passed", input_tokens=1000, output_tokens=50,
                      cost_usd=0.00123, latency_ms=400),
        AttemptRecord(1, **common, outcome="error", error_class="rate_limit", latency_ms=100),
        AttemptRecord(2, **common, outcome="passed", input_tokens=800, output_tokens=40,
                      cost_usd=0.0009, latency_ms=300),
        AttemptRecord(1, **common, outcome="error", error_class="timeout", input_tokens=1200,
                      usage_estimated=True, cost_usd=0.0012, latency_ms=30000),
        AttemptRecord(1, **common, outcome="passed", input_tokens=1000, output_tokens=50,
                      cache_hit=True, saved_usd=0.00123),
    ]  # fmt: skip
    record_chunk({"tier": tier, "calls": [call_facts(call) for call in calls]})
    by = {"tier": tier, "model": nano}
    assert value("batchrouter_tokens_total", **by, kind="input") == 1000 + 800 + 1200
    assert value("batchrouter_tokens_total", **by, kind="output") == 50 + 40
    assert value("batchrouter_cost_usd_total", **by) == pytest.approx(0.00123 + 0.0009 + 0.0012)
    passed = value("batchrouter_attempts_total", **by, deployment=nano, outcome="passed")
    assert passed == 2  # the cache hit is no provider call
    assert value("batchrouter_cache_hits_total", **by, deployment=nano) == 1
    seconds = {"tier": tier, "deployment": nano}
    assert value("batchrouter_call_latency_seconds_count", **seconds) == 4
    assert value("batchrouter_call_latency_seconds_sum", **seconds) == pytest.approx(30.8)


def test_premium_only_uses_the_replay_tables_recorded_cost(batch_id: str, tmp_path: Path) -> None:
    """Issue 14: where the premium deployment replays a table that recorded what a call cost,
    premium-only takes that cost; items without a recorded cost are priced from tokens."""
    from ledger.models import Batch
    from routing.replay_table import write_replay_rows

    table = tmp_path / "recorded.jsonl"
    write_replay_rows(
        table,
        [
            {"item_id": "f1", "model": "sim-premium", "text": "billing", "cost_usd": 0.004},
            {"item_id": "f2", "model": "sim-premium", "text": "billing", "cost_usd": 0.003},
            {"item_id": "f3", "model": "sim-premium", "text": "refund_request"},  # no cost
        ],
    )
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        batch.config_yaml = batch.config_yaml.replace(
            "    provider: sim\n    model: sim-premium\n",
            f"    provider: replay\n    model: sim-premium\n    replay_file: {table}\n",
        )
    # f1's tokens priced 0.003 ((1000 x 2.50 + 50 x 10.00) / 1e6) and f2's 0.0024
    # ((800 x 2.50 + 40 x 10.00) / 1e6); their recorded costs replace them:
    # 0.02085 - 0.003 - 0.0024 + 0.004 + 0.003 = 0.02245
    r = report(batch_id)
    assert r.premium_only_cost_usd == D("0.02245")
    assert r.saving_usd == D("0.02245") - COST
    assert any(
        "2 items priced premium-only at the replay table's recorded cost" in n for n in r.notes
    )


def test_a_batch_served_entirely_from_the_cache_has_no_routing_figure(
    use_ledger, sqlite_url: str
) -> None:
    """Two items answered by the cache from premium calls (1000 in, 50 out at $2.50 / $10.00
    per 1M: (2500 + 500) / 1e6 = $0.003 each). The hits carry those calls' usage, so
    premium-only is 2 x 0.003 = 0.006, all of it cache saving: routing 0, not negative."""
    from tests.helpers.ledger_data import D1, fill

    use_ledger(sqlite_url)
    hit = {"cache_hit": True, "saved_usd": D("0.003")}
    rows = {
        key: ("rerun", "succeeded", "tier0", None, "billing",
              [("tier0", "passed", None, 1000, 0, 50, D("0"), 0, D1, hit)])
        for key in ("h1", "h2")
    }  # fmt: skip
    batch = fill(rows, {"rerun": ("r" * 32, "ticket_classification")})["rerun"]
    r = report(batch)
    assert (r.cost_usd, r.premium_only_cost_usd, r.cache_saving_usd) == (0, D("0.006"), D("0.006"))
    assert r.routing_saving_usd == 0 and r.saving_usd == D("0.006")
    assert not any("negative" in note for note in r.notes)
    assert r.latency == []  # no call was made
