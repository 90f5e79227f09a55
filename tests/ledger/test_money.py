"""Money is exact on SQLite and PostgreSQL: sums that floats would drift, and migration 0009
(float columns to NUMERIC) keeping every value, up and down (issue 16)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import create_engine, insert, text
from typer.testing import CliRunner

from batchrouter.cli import app
from ledger.db import alembic_config, session_scope
from ledger.models import Attempt, Batch, Item
from ledger.money import dumps, money
from ledger.report import run_report
from ledger.report_queries import ReportFilter
from tests.conftest import EXAMPLES

CALLS = 20_000  # $0.1 each: binary floating point cannot hold 0.1, so a float sum drifts


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    return use_ledger(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )


def test_twenty_thousand_dimes_add_up_to_two_thousand_dollars(ledger_url: str) -> None:
    # sum(0.1 for _ in range(20_000)) == 1999.9999999992765 in floats; SQL sums drift alike.
    assert sum(0.1 for _ in range(CALLS)) != 2000
    with session_scope() as session:
        session.add(
            Batch(
                id="d" * 32,
                name="dimes",
                task_type="ticket_classification",
                config_yaml=(EXAMPLES / "routing.yaml").read_text(),
                config_source="routing.yaml",
                total=1,
            )
        )
        session.flush()
        item = Item(
            batch_id="d" * 32, external_id="x", line_no=1, text="t", fields={}, tier="tier0"
        )
        session.add(item)
        session.flush()
        row = {"item_id": item.id, "batch_id": "d" * 32, "tier": "tier0", "provider": "sim"}
        row |= {"deployment": "sim-nano", "model": "sim-nano", "outcome": "check_failed"}
        session.execute(
            insert(Attempt),
            [{**row, "attempt_no": n, "cost_usd": 0.1} for n in range(1, CALLS + 1)],
        )
    with session_scope() as session:
        r = run_report(session, ReportFilter(batch_ids=("d" * 32,)))
    assert r.cost_usd == Decimal("2000") and r.by_tier[0].cost_usd == Decimal("2000")
    shown = CliRunner().invoke(app, ["status", "dimes", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout, parse_float=Decimal)["spent_usd"] == Decimal("2000")


def test_money_helpers() -> None:
    assert money(1500 * 1.0 / 1e6) == Decimal("0.0015")  # 0.0015000000000000000312 as a float
    assert money(0.1 + 0.2) == Decimal("0.3")  # its repr: 0.30000000000000004
    assert dumps({"a": money("0.0402"), "b": [money(-1.5)]}, indent=None) == (
        '{"a": 0.0402, "b": [-1.5]}'
    )


# (table, column) -> a float value as migration 0008 stored it
STORED = {
    ("batches", "budget_usd"): 0.5,
    ("batches", "spent_usd"): 0.0402,
    ("batches", "reserved_usd"): 0.0015000000000000000312,
    ("items", "cost_usd"): 0.0402,
    ("attempts", "cost_usd"): 0.00123,
    ("attempts", "saved_usd"): 0.0015,
    ("response_cache", "cost_usd"): 0.00123,
    ("budget_reservations", "amount_usd"): 0.25,
    ("project_budgets", "spent_usd"): 12.345678901234,
}


def test_migration_0009_keeps_every_value_up_and_down(sqlite_url: str, use_ledger) -> None:
    _migration_round_trip(sqlite_url, use_ledger)


@pytest.mark.postgres
def test_migration_0009_keeps_every_value_up_and_down_on_postgres(
    postgres_url: str, use_ledger
) -> None:
    _migration_round_trip(postgres_url, use_ledger)


def _migration_round_trip(url: str, use_ledger) -> None:  # type: ignore[no-untyped-def]
    use_ledger(url)  # at head: go back to 0008 and store floats as it did
    config = alembic_config(url)
    command.downgrade(config, "0008")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO batches (id, task_type, config_yaml, config_source, total, done, "
                "state, budget_usd, spent_usd, reserved_usd, created_at) VALUES ('b', 't', '', "
                "'', 1, 0, 'running', :budget, :spent, :reserved, CURRENT_TIMESTAMP)"
            ),
            {
                "budget": STORED["batches", "budget_usd"],
                "spent": STORED["batches", "spent_usd"],
                "reserved": STORED["batches", "reserved_usd"],
            },
        )
        connection.execute(
            text(
                "INSERT INTO items (id, batch_id, external_id, line_no, text, fields, state, "
                "tier, attempts, cost_usd, claims, retry_base, duplicates, updated_at) VALUES "
                "(1, 'b', 'x', 1, 't', '{}', 'succeeded', 'tier0', 1, :cost, 1, 0, 0, "
                "CURRENT_TIMESTAMP)"
            ),
            {"cost": STORED["items", "cost_usd"]},
        )
        connection.execute(
            text(
                "INSERT INTO attempts (item_id, batch_id, attempt_no, tier, deployment, "
                "provider, model, input_tokens, cached_input_tokens, cache_write_tokens, "
                "output_tokens, reasoning_tokens, usage_estimated, cost_usd, prices, latency_ms, "
                "outcome, verdicts, created_at, cache_hit, saved_usd) VALUES (1, 'b', 1, 'tier0', "
                "'d', 'sim', 'm', 1, 0, 0, 1, 0, false, :cost, '{}', 1.0, 'passed', '[]', "
                "CURRENT_TIMESTAMP, false, :saved)"
            ),
            {"cost": STORED["attempts", "cost_usd"], "saved": STORED["attempts", "saved_usd"]},
        )
        connection.execute(
            text(
                "INSERT INTO response_cache (key, namespace, deployment, model, output, cost_usd, "
                "hits, created_at, expires_at) VALUES ('k', 'n', 'd', 'm', 'o', :cost, 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"cost": STORED["response_cache", "cost_usd"]},
        )
        connection.execute(
            text(
                "INSERT INTO budget_reservations (id, batch_id, amount_usd, expires_at) VALUES "
                "('r', 'b', :amount, CURRENT_TIMESTAMP)"
            ),
            {"amount": STORED["budget_reservations", "amount_usd"]},
        )
        connection.execute(
            text(
                "INSERT INTO project_budgets (project, budget_usd, spent_usd, reserved_usd) "
                "VALUES ('p', NULL, :spent, 0)"
            ),
            {"spent": STORED["project_budgets", "spent_usd"]},
        )

    def read() -> dict[tuple[str, str], object]:
        with engine.connect() as connection:
            return {
                (table, column): connection.execute(
                    text(f"SELECT {column} FROM {table}")  # noqa: S608 - names from STORED
                ).scalar_one()
                for table, column in STORED
            }

    command.upgrade(config, "0009")
    exact = {key: money(value) for key, value in read().items()}  # type: ignore[arg-type]
    assert exact == {key: money(value) for key, value in STORED.items()}
    assert exact["batches", "reserved_usd"] == Decimal("0.0015")
    assert exact["project_budgets", "spent_usd"] == Decimal("12.345678901234")
    command.downgrade(config, "0008")
    assert read() == pytest.approx(STORED, rel=1e-15)
    command.upgrade(config, "head")
    engine.dispose()
