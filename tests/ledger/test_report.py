"""Report queries on SQLite and PostgreSQL, against figures worked out by hand (tests/helpers/ledger_data.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.db import session_scope
from ledger.report import Report, build_report, parse_when, run_report
from ledger.report_queries import ReportFilter
from tests.helpers.ledger_data import fill_ledger

D = Decimal
PREMIUM_IN, PREMIUM_OUT = D("2.50"), D("10.00")  # sim-premium, USD per 1M tokens
# premium-only = each item's prompt (its first attempt's input; i3's first call failed unbilled
# with 0 tokens, so its next attempt's 1500: issue 14) + final answer, at premium prices:
# alpha (4700 x 2.50 + 67 x 10.00) / 1e6 = (11750 + 670) / 1e6 = 0.01242
ALPHA_PREMIUM = ((1000 + 2000 + 1500 + 1200) * PREMIUM_IN + (10 + 30 + 15 + 12) * PREMIUM_OUT) / D(
    10**6
)
BETA_PREMIUM = ((4000 + 3000) * PREMIUM_IN + (100 + 80) * PREMIUM_OUT) / D(10**6)  # 0.0193
ALPHA_COST = (
    D("0.001") + D("0.002") + D("0.004") + D("0.0015") + D("0.003") + D("0.0055") + D("0.0012")
)  # 0.0182
BETA_COST = D("0.004") + D("0.008") + D("0.02") + D("0.003")  # 0.035


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, use_ledger) -> dict[str, str]:
    use_ledger(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    return fill_ledger()


def report(by: list[str] | None = None, **filters) -> Report:
    with session_scope() as session:
        return run_report(session, ReportFilter(**filters), by)


def test_totals_funnel_and_premium_only_over_everything(ledger: dict[str, str]) -> None:
    r = report()
    assert (r.batches, r.items, r.succeeded, r.failed, r.pending) == (2, 7, 4, 1, 2)
    assert r.attempts == 12
    assert r.input_tokens == 1000 + 2000 + 2000 + 1500 * 3 + 1200 + 4000 * 3 + 3000
    assert r.cached_input_tokens == 500
    assert r.output_tokens == 10 + 20 + 30 + 15 * 3 + 12 + 100 * 3 + 80
    assert r.cost_usd == ALPHA_COST + BETA_COST
    assert r.cost_per_succeeded_usd == D("0.0532") / 4  # 0.0133
    assert r.premium_only_cost_usd == ALPHA_PREMIUM + BETA_PREMIUM
    assert r.saving_usd == ALPHA_PREMIUM + BETA_PREMIUM - ALPHA_COST - BETA_COST
    assert r.premium_tier == "tier2"
    # no cost lever in this ledger: all of the saving is routing's
    assert (r.cache_hits, r.deferred_calls) == (0, 0)
    assert r.cache_saving_usd == r.deferral_saving_usd == 0.0
    assert r.routing_saving_usd == r.saving_usd
    assert (r.with_expected, r.correct) == (2, 1)
    assert r.simulated
    funnel = {t.tier: t for t in r.by_tier}
    assert [t.tier for t in r.by_tier] == ["tier0", "tier1", "tier2"]
    t0, t1, t2 = funnel["tier0"], funnel["tier1"], funnel["tier2"]
    assert (t0.items_received, t0.attempts, t0.resolved, t0.escalated, t0.failed) == (6, 7, 2, 4, 0)
    assert (t1.items_received, t1.attempts, t1.resolved, t1.escalated, t1.failed) == (3, 3, 1, 2, 0)
    assert (t2.items_received, t2.attempts, t2.resolved, t2.escalated, t2.failed) == (2, 2, 1, 0, 1)
    assert t0.cost_usd == D("0.001") + D("0.002") + D("0.0015") + D("0.0012") + D("0.004") + D(
        "0.003"
    )
    models = {m.deployment: m for m in r.by_model}
    assert models["sim-premium"].cost_usd == D("0.0255")
    assert models["sim-mini"].cached_input_tokens == 500


def test_latency_percentiles_are_nearest_rank_per_deployment(ledger: dict[str, str]) -> None:
    lines = {line.deployment: line for line in report().latency}
    # sim-nano: 50 100 120 150 200 250 400 -> ranks ceil(.5*7)=4, ceil(.95*7)=7, ceil(.99*7)=7
    nano = lines["sim-nano"]
    assert (nano.calls, nano.p50_ms, nano.p95_ms, nano.p99_ms) == (7, 150, 400, 400)
    assert nano.mean_ms == pytest.approx(1270 / 7)
    mini = lines["sim-mini"]  # 300 350 600
    assert (mini.calls, mini.p50_ms, mini.p95_ms, mini.p99_ms) == (3, 350, 600, 600)
    premium = lines["sim-premium"]  # 900 1200
    assert (premium.p50_ms, premium.p95_ms) == (900, 1200)


def test_top_failure_reasons(ledger: dict[str, str]) -> None:
    reasons = [(f.kind, f.name, f.count) for f in report().failure_reasons]
    assert reasons == [("check", "label", 4), ("check", "length", 3), ("error", "rate_limit", 1)]
    shares = [f.share_pct for f in report().failure_reasons]  # of 12 - 4 passed = 8 attempts
    assert shares == pytest.approx([50.0, 37.5, 12.5])


def test_filters_by_project_task_type_batch_and_dates(ledger: dict[str, str]) -> None:
    alpha = report(project="alpha")
    assert (alpha.batches, alpha.items, alpha.attempts) == (1, 5, 8)
    assert alpha.cost_usd == ALPHA_COST
    assert alpha.premium_only_cost_usd == ALPHA_PREMIUM
    summaries = report(task_type="summarization")
    assert (summaries.items, summaries.succeeded, summaries.failed) == (2, 1, 0 + 1)
    assert summaries.cost_usd == BETA_COST
    one = report(batch_ids=(ledger["beta"],))
    assert one.premium_only_cost_usd == BETA_PREMIUM
    assert report(project="nobody").attempts == 0

    day2 = report(since=parse_when("2026-11-02"))
    assert day2.attempts == 8 and day2.items == 4  # i3 i4 j1 j2
    assert (day2.succeeded, day2.failed) == (2, 1)
    # i3's first attempt in range is its tier0 label fail (1500 in), i4 is 1200 in
    alpha_day2 = ((1500 + 1200) * PREMIUM_IN + (15 + 12) * PREMIUM_OUT) / D(10**6)
    assert day2.premium_only_cost_usd == alpha_day2 + BETA_PREMIUM
    day1 = report(until=parse_when("2026-11-01", end=True))
    assert day1.attempts == 4 and day1.cost_usd == D("0.007")
    window = report(
        since=datetime(2026, 11, 1, 9, tzinfo=UTC), until=datetime(2026, 11, 1, 11, tzinfo=UTC)
    )
    assert window.attempts == 4


def test_groupings(ledger: dict[str, str]) -> None:
    days = {g.key["day"]: g for g in report(["day"]).groups}
    assert set(days) == {"2026-11-01", "2026-11-02"}
    d1, d2 = days["2026-11-01"], days["2026-11-02"]
    assert (d1.items, d1.attempts, d1.succeeded, d1.errors) == (3, 4, 2, 1)
    assert d1.cost_usd == D("0.007")
    assert (d2.items, d2.attempts, d2.succeeded) == (4, 8, 2)
    assert d2.cost_usd == D("0.0112") + BETA_COST
    assert d1.premium_only_cost_usd is None  # an item's attempts may span days

    types = {g.key["task_type"]: g for g in report(["task_type"]).groups}
    tickets = types["ticket_classification"]
    assert (tickets.items, tickets.attempts, tickets.succeeded, tickets.errors) == (4, 8, 3, 1)
    assert tickets.premium_only_cost_usd == ALPHA_PREMIUM
    assert tickets.saving_usd == ALPHA_PREMIUM - ALPHA_COST
    summaries = types["summarization"]
    assert summaries.cost_per_succeeded_usd == BETA_COST

    pairs = {(g.key["tier"], g.key["model"]): g for g in report(["tier", "model"]).groups}
    assert set(pairs) == {("tier0", "sim-nano"), ("tier1", "sim-mini"), ("tier2", "sim-premium")}
    assert pairs[("tier1", "sim-mini")].attempts == 3
    deployments = {g.key["deployment"]: g.items for g in report(["deployment"]).groups}
    assert deployments == {"sim-nano": 6, "sim-mini": 3, "sim-premium": 2}
    by_batch = {g.key["project"]: g.premium_only_cost_usd for g in report(["project"]).groups}
    assert by_batch == {"alpha": ALPHA_PREMIUM, "beta": BETA_PREMIUM}
    with pytest.raises(ValueError, match="unknown grouping"):
        report(["colour"])


def test_the_one_batch_report_keeps_its_shape(ledger: dict[str, str]) -> None:
    with session_scope() as session:
        batch = build_report(session, "alpha")
    assert (batch.items, batch.succeeded, batch.failed, batch.pending) == (5, 3, 0, 2)
    assert [t.tier for t in batch.by_tier] == ["tier0", "tier1", "tier2"]
    assert batch.by_tier[0].escalated == 3 and batch.by_tier[1].items_received == 2  # i4 waits
    assert batch.premium_only_cost_usd == ALPHA_PREMIUM
    assert batch.saving_pct == pytest.approx(
        float(100 * (ALPHA_PREMIUM - ALPHA_COST) / ALPHA_PREMIUM)
    )
    assert (batch.with_expected, batch.correct, batch.simulated) == (2, 1, True)


def test_the_default_tier_grouping_matches_the_sql_grouping(ledger: dict[str, str]) -> None:
    from ledger.report_queries import grouped

    derived = {g.key["tier"]: g for g in report().groups}
    with session_scope() as session:
        direct = {g.key["tier"]: g for g in grouped(session, ReportFilter(), ["tier"])}
    assert set(derived) == set(direct) == {"tier0", "tier1", "tier2"}
    for tier, row in direct.items():
        line = derived[tier]
        assert (line.items, line.attempts, line.succeeded, line.errors) == (
            row.items,
            row.attempts,
            row.passed,
            row.errors,
        )
        assert (line.input_tokens, line.output_tokens) == (row.input_tokens, row.output_tokens)
        assert line.cost_usd == row.cost_usd


def test_time_queued_in_the_worker_is_shown_apart_from_the_providers_latency(
    ledger: dict[str, str],
) -> None:
    """Issue 19. Attempts from before migration 0008 have no queued time: shown as none."""
    from sqlalchemy import update

    from ledger.models import Attempt

    assert all(line.queued_mean_ms is None for line in report().latency)
    with session_scope() as session:
        session.execute(
            update(Attempt).where(Attempt.deployment == "sim-mini").values(queued_ms=450.0)
        )
    lines = {line.deployment: line for line in report().latency}
    assert lines["sim-mini"].queued_mean_ms == pytest.approx(450.0)
    assert lines["sim-mini"].p50_ms == 350  # the provider's latency is unchanged
    assert lines["sim-nano"].queued_mean_ms is None
    shown = {line["deployment"]: line for line in report().as_dict()["latency"]}
    assert shown["sim-mini"]["queued_mean_ms"] == pytest.approx(450.0)  # JSON has it too
