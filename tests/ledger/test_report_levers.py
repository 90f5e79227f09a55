"""The saving split into routing, deferral and cache, on SQLite and PostgreSQL, against figures
worked out by hand from LEVER_LEDGER (tests/helpers/ledger_data.py)."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchrouter.cli import app
from ledger.db import session_scope
from ledger.money import money
from ledger.report import Report, build_report, run_report
from ledger.report_queries import ReportFilter
from tests.helpers.ledger_data import fill_lever_ledger

PREMIUM_IN, PREMIUM_OUT = 2.50, 10.00  # sim-premium, USD per 1M tokens

# gamma: premium-only keeps every item's first input and last output, cache hits included
# (k2's only attempt is a cache hit; k5's last attempt is one).
GAMMA_PREMIUM = (
    (10000 + 10000 + 2000 + 1500 + 2000) * PREMIUM_IN + (100 + 100 + 30 + 15 + 30) * PREMIUM_OUT
) / 1e6
GAMMA_COST = 0.001 + 0.0 + (0.002 + 0.002) + (0.0015 + 0.0015 + 0.0055) + (0.002 + 0.0)
GAMMA_CACHE = 0.001 + 0.002  # k2, k5: what the reused calls cost
GAMMA_DEFERRAL = 0.002 + 0.0015  # k3, k4 on tier1 (k5's row is in pb1 but is a cache hit)
GAMMA_ROUTING = GAMMA_PREMIUM - (GAMMA_COST + GAMMA_CACHE + GAMMA_DEFERRAL)
# delta: three calls dearer than one premium call, no levers: routing saves less than nothing
DELTA_PREMIUM = (1000 * PREMIUM_IN + 10 * PREMIUM_OUT) / 1e6
DELTA_COST = 0.01 + 0.02 + 0.03
DELTA_ROUTING = DELTA_PREMIUM - DELTA_COST


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, use_ledger) -> dict[str, str]:
    use_ledger(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    return fill_lever_ledger()


def report(by: list[str] | None = None, **filters) -> Report:
    with session_scope() as session:
        return run_report(session, ReportFilter(**filters), by)


def test_the_hand_worked_figures() -> None:
    # the constants above, as one would check them on paper
    assert round(GAMMA_PREMIUM, 9) == 0.0665
    assert round(GAMMA_ROUTING, 9) == 0.0445
    assert round(DELTA_ROUTING, 9) == -0.0574


def test_saving_split_for_one_project(ledger: dict[str, str]) -> None:
    r = report(project="gamma")
    assert r.attempts == 9
    assert (r.cache_hits, r.deferred_calls) == (2, 2)
    assert r.cost_usd == money(GAMMA_COST)
    assert r.premium_only_cost_usd == money(GAMMA_PREMIUM)
    assert r.cache_saving_usd == money(GAMMA_CACHE)
    assert r.deferral_saving_usd == money(GAMMA_DEFERRAL)
    assert r.routing_saving_usd == money(GAMMA_ROUTING)
    assert r.saving_usd == money(GAMMA_PREMIUM - GAMMA_COST)
    assert r.routing_saving_usd + r.deferral_saving_usd + r.cache_saving_usd == money(r.saving_usd)
    # billed tokens only: k2's and k5's cache hits carry tokens nobody paid for
    assert r.input_tokens == 10000 + (2000 + 2000) + 1500 * 3 + 2000
    assert r.output_tokens == 100 + (20 + 30) + 15 * 3 + 20
    assert not any("negative" in note for note in r.notes)


def test_negative_routing_saving_over_everything(ledger: dict[str, str]) -> None:
    r = report()
    assert (r.cache_hits, r.deferred_calls) == (2, 2)
    assert r.premium_only_cost_usd == money(GAMMA_PREMIUM + DELTA_PREMIUM)
    assert r.routing_saving_usd == money(GAMMA_ROUTING + DELTA_ROUTING)
    assert r.routing_saving_usd < 0
    assert r.routing_saving_usd + r.deferral_saving_usd + r.cache_saving_usd == money(r.saving_usd)
    assert r.input_tokens == 20500 + 3 * 1000 and r.output_tokens == 215 + 3 * 10
    assert any("routing saving is negative" in note for note in r.notes)


def test_levers_per_group(ledger: dict[str, str]) -> None:
    tiers = {g.key["tier"]: g for g in report().groups}  # derived from the model lines
    assert (tiers["tier0"].cache_hits, tiers["tier0"].deferred_calls) == (1, 0)
    assert tiers["tier0"].cache_saving_usd == money(0.001)
    assert (tiers["tier1"].cache_hits, tiers["tier1"].deferred_calls) == (1, 2)
    assert tiers["tier1"].cache_saving_usd == money(0.002)
    assert tiers["tier1"].deferral_saving_usd == money(GAMMA_DEFERRAL)
    assert tiers["tier0"].input_tokens == 10000 + 2000 + 1500 + 2000 + 1000
    assert tiers["tier1"].routing_saving_usd is None  # premium-only is not defined per tier

    # the same figures from the SQL grouping
    deployments = {g.key["deployment"]: g for g in report(["deployment"]).groups}
    mini = deployments["sim-mini"]
    assert (mini.cache_hits, mini.deferred_calls) == (1, 2)
    assert mini.cache_saving_usd == money(0.002)
    assert mini.deferral_saving_usd == money(GAMMA_DEFERRAL)
    assert mini.input_tokens == 2000 + 1500 + 1000  # k5's cache hit left out
    premium = deployments["sim-premium"]
    assert (premium.cache_hits, premium.deferred_calls, premium.cache_saving_usd) == (0, 0, 0)

    projects = {g.key["project"]: g for g in report(["project"]).groups}
    gamma, delta = projects["gamma"], projects["delta"]
    assert gamma.routing_saving_usd == money(GAMMA_ROUTING)
    assert gamma.cache_saving_usd == money(GAMMA_CACHE)
    assert gamma.deferral_saving_usd == money(GAMMA_DEFERRAL)
    assert gamma.routing_saving_usd + gamma.cache_saving_usd + gamma.deferral_saving_usd == (
        money(gamma.saving_usd)
    )
    assert delta.routing_saving_usd == money(DELTA_ROUTING)
    assert (delta.cache_hits, delta.deferred_calls) == (0, 0)

    models = {m.deployment: m for m in report().by_model}
    assert (models["sim-nano"].cache_hits, models["sim-mini"].deferred_calls) == (1, 2)


def test_the_one_batch_report_carries_the_split(ledger: dict[str, str]) -> None:
    with session_scope() as session:
        batch = build_report(session, "gamma")
    assert (batch.cache_hits, batch.deferred_calls) == (2, 2)
    assert batch.routing_saving_usd == money(GAMMA_ROUTING)
    assert batch.cache_saving_usd == money(GAMMA_CACHE)
    assert batch.deferral_saving_usd == money(GAMMA_DEFERRAL)


# --- every output shows it (the CLI, on SQLite) ---

runner = CliRunner()


@pytest.fixture
def sqlite_ledger(use_ledger, sqlite_url: str) -> dict[str, str]:
    use_ledger(sqlite_url)
    return fill_lever_ledger()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stdout
    return result.stdout


def test_json_and_csv_have_the_split(sqlite_ledger: dict[str, str]) -> None:
    data = json.loads(run("report", "--format", "json", "--by", "project"), parse_float=Decimal)
    for name in ("routing_saving_usd", "deferral_saving_usd", "cache_saving_usd"):
        assert name in data and all(name in g for g in data["groups"])
    assert (data["cache_hits"], data["deferred_calls"]) == (2, 2)
    assert (
        data["routing_saving_usd"] + data["deferral_saving_usd"] + data["cache_saving_usd"]
        == data["saving_usd"]
    )  # exact: the JSON numbers are the ledger's decimals
    assert {m["deployment"]: m["deferred_calls"] for m in data["by_model"]}["sim-mini"] == 2

    rows = list(csv.DictReader(io.StringIO(run("report", "--format", "csv", "--by", "tier"))))
    header = list(rows[0])
    assert header[:12] == ["tier", "items", "attempts", "succeeded", "errors", "input_tokens"] + [
        "cached_input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_per_succeeded_usd",
        "premium_only_cost_usd",
        "saving_usd",
    ]  # the existing columns keep their places; the new ones come after
    assert header[12:] == [
        "routing_saving_usd",
        "deferral_saving_usd",
        "cache_saving_usd",
        "cache_hits",
        "deferred_calls",
        "cache_write_tokens",
        "reasoning_tokens",
        "unconfirmed_calls",
        "unconfirmed_cost_usd",
    ]
    by_tier = {r["tier"]: r for r in rows}
    assert (by_tier["tier1"]["cache_hits"], by_tier["tier1"]["deferred_calls"]) == ("1", "2")
    assert by_tier["tier1"]["deferral_saving_usd"] == "0.0035"  # exact: 0.002 + 0.0015
    assert by_tier["tier1"]["routing_saving_usd"] == ""  # not defined per tier
    total = by_tier["total"]
    parts = sum(Decimal(total[k]) for k in ("routing_saving_usd", "deferral_saving_usd"))
    assert parts + Decimal(total["cache_saving_usd"]) == Decimal(total["saving_usd"])


def test_table_and_html_show_where_the_saving_came_from(
    sqlite_ledger: dict[str, str], tmp_path: Path
) -> None:
    out = run("report", "--project", "gamma", "--by", "deployment")
    split = "Where the saving came from: routing $0.0445, deferral $0.00350 (2 deferred calls)"
    assert split in out and "cache $0.00300 (2 cache hits)" in out
    assert "Cost levers by deployment" in out and "deferral saved" in out
    negative = run("report")
    assert "(negative: escalations cost more than premium-only)" in negative

    page_file = tmp_path / "report.html"
    run("report", "--html", str(page_file), "--by", "project", "--format", "json")
    page = page_file.read_text()
    assert "Where the saving came from" in page
    for words in ("Routing", "Deferral", "Cache", "2 deferred calls", "2 cache hits"):
        assert words in page, words
    assert "routing saved" in page and "deferral saved" in page  # per-project columns
    assert "class='neg'" in page  # the negative routing row is marked
    assert re.search(r"https?://", page) is None and "<script" not in page
