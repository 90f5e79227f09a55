"""Issue 19: `status` answers from counts an index serves, and the CLI loads only what a
command needs. No timing assertions: what is loaded, and what is answered, is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger.db import LedgerSchemaError, check_schema
from ledger.errors import alembic_head, migration_head
from ledger.money import money
from tests.conftest import ROOT


def run(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_help_and_the_package_load_no_ledger_broker_or_api() -> None:
    loaded = run(
        "import sys, contextlib, io\n"
        "import batchrouter.cli as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.app(['--help'])\n"
        "print(' '.join(sorted(sys.modules)))"
    ).split()
    for heavy in ("sqlalchemy", "celery", "alembic", "ledger.db", "producers", "batchrouter.api"):
        assert heavy not in loaded, f"`batchrouter --help` imports {heavy}"


def test_the_public_api_still_imports_from_the_package() -> None:
    from batchrouter import batch_status, export_results, submit_batch, wait_for_batch
    from producers.submit import submit_batch as real

    assert submit_batch is real and callable(batch_status)
    assert callable(export_results) and callable(wait_for_batch)
    with pytest.raises(AttributeError):
        import batchrouter

        _ = batchrouter.no_such_thing  # type: ignore[attr-defined]


def test_the_migration_head_is_read_without_alembic_and_agrees_with_it() -> None:
    assert migration_head() == alembic_head()


def test_a_ledger_behind_the_head_is_refused(sqlite_url: str) -> None:
    from ledger.db import upgrade_schema

    engine = create_engine(sqlite_url)
    with pytest.raises(LedgerSchemaError, match="has no batchrouter tables"):
        check_schema(engine)
    upgrade_schema(sqlite_url)
    check_schema(engine)  # at the head: passes
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    with pytest.raises(LedgerSchemaError, match="is at revision 0005; this version needs"):
        check_schema(engine)
    engine.dispose()


def fill(url: str, name: str = "nightly") -> str:
    """A batch of 7 items over two tiers and four states, written through the ledger's own
    functions; returns its id."""
    from ledger.batches import register_batch
    from ledger.db import session_scope
    from ledger.models import Item
    from routing.types import InputItem

    items = [InputItem(external_id=f"x{n}", line_no=n, text=f"t{n}") for n in range(7)]
    with session_scope(url) as session:
        batch_id, ids = register_batch(
            session,
            items=items,
            task_type="ticket_classification",
            entry_tier="tier0",
            config_yaml="",
            config_source="test",
            name=name,
        )
        for item_id, (tier, state) in zip(
            ids,
            [("tier0", "succeeded")] * 3
            + [("tier1", "succeeded"), ("tier1", "failed"), ("tier1", "queued")]
            + [("tier0", "running")],
            strict=True,
        ):
            row = session.get(Item, item_id)
            assert row is not None
            row.tier, row.state = tier, state
    return batch_id


@pytest.mark.postgres
def test_status_counts_by_state_and_tier_in_the_same_json_shape(
    postgres_url: str, use_ledger
) -> None:
    use_ledger(postgres_url)
    batch_id = fill(postgres_url)
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": postgres_url}
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "batchrouter", "status", "nightly", "--format", "json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert shown["batch_id"] == batch_id
    assert (shown["total"], shown["done"], shown["finished"]) == (7, 5, False)
    assert shown["by_state"] == {"succeeded": 4, "failed": 1, "queued": 1, "running": 1}
    assert shown["by_tier"] == [
        {"tier": "tier0", "state": "running", "items": 1},
        {"tier": "tier0", "state": "succeeded", "items": 3},
        {"tier": "tier1", "state": "failed", "items": 1},
        {"tier": "tier1", "state": "queued", "items": 1},
        {"tier": "tier1", "state": "succeeded", "items": 1},
    ]
    assert set(shown) == {
        "batch_id", "name", "task_type", "total", "done", "finished", "state", "paused_reason",
        "budget_usd", "spent_usd", "reserved_usd", "by_state", "by_tier",
    }  # fmt: skip
    table = subprocess.run(
        [sys.executable, "-m", "batchrouter", "status", batch_id[:8]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "5/7 done" in table


@pytest.mark.postgres
def test_status_on_postgresql_loads_neither_typer_nor_pydantic_nor_sqlalchemy(
    postgres_url: str, use_ledger
) -> None:
    """The quick path (batchrouter/cli/quick.py) answers, and prints what typer's would."""
    from typer.testing import CliRunner

    from batchrouter.cli import app

    use_ledger(postgres_url)
    batch_id = fill(postgres_url)
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": postgres_url, "COLUMNS": "120"}
    for args in ([batch_id[:8]], [batch_id, "--format", "json"]):
        code = (
            "import sys, contextlib, io\n"
            f"sys.argv = ['batchrouter', 'status', *{args!r}]\n"
            "from batchrouter.cli import main\n"
            "shown = io.StringIO()\n"
            "with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):\n"
            "    main()\n"
            "print(' '.join(sorted(sys.modules)))\n"
            "print(shown.getvalue(), end='')"
        )
        loaded, _, shown = run(code, env).partition("\n")
        modules = loaded.split()
        assert "psycopg" in modules
        for heavy in ("typer", "pydantic", "pydantic_settings", "sqlalchemy", "celery"):
            assert heavy not in modules, f"`batchrouter status` imports {heavy}"
        assert ("rich" in modules) == ("json" not in args)  # a table needs rich, JSON does not
        through_typer = CliRunner().invoke(app, ["status", *args], terminal_width=120)
        assert through_typer.exit_code == 0
        assert shown.split() == through_typer.stdout.split()
    assert "5/7 done" in shown or '"done": 5' in shown


@pytest.mark.postgres
def test_the_status_query_is_served_by_the_index_alone(postgres_url: str, use_ledger) -> None:
    use_ledger(postgres_url)
    batch_id = fill(postgres_url)
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE items"))  # the visibility map autovacuum keeps
        connection.execute(text("SET enable_seqscan = off"))  # 7 rows: force the index's plan
        plan = "\n".join(
            connection.scalars(
                text(
                    "EXPLAIN SELECT tier, state, count(*) FROM items WHERE batch_id = :b "
                    "GROUP BY state, tier"
                ),
                {"b": batch_id},
            )
        )
    engine.dispose()
    assert "Index Only Scan using ix_items_batch_state_tier" in plan, plan


def test_status_of_an_unknown_batch_exits_2(tmp_path: Path, sqlite_url: str, use_ledger) -> None:
    use_ledger(sqlite_url)
    done = subprocess.run(
        [sys.executable, "-m", "batchrouter", "status", "nope"],
        cwd=ROOT,
        env={**os.environ, "BATCHROUTER_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no batch 'nope'" in done.stderr


@pytest.mark.postgres
def test_the_direct_postgresql_read_agrees_with_the_sqlalchemy_path(
    postgres_url: str, use_ledger
) -> None:
    from datetime import timedelta

    from ledger.batches import batch_status
    from ledger.db import session_scope
    from ledger.errors import UnknownBatch
    from ledger.models import Batch, BudgetReservation, utcnow
    from ledger.status import read_status

    use_ledger(postgres_url)
    batch_id = fill(postgres_url)
    other = fill(postgres_url, name="older")  # older by an hour, paused, with a budget
    with session_scope(postgres_url) as session:
        row = session.get(Batch, other)
        assert row is not None
        row.created_at = utcnow() - timedelta(hours=1)
        row.state, row.paused_reason, row.budget_usd, row.spent_usd = "paused", "budget", 2.0, 0.5
        session.add_all(
            [
                BudgetReservation(id="r1", batch_id=batch_id, amount_usd=0.25,
                                  expires_at=utcnow() + timedelta(minutes=5)),
                BudgetReservation(id="r2", batch_id=batch_id, amount_usd=9.0,
                                  expires_at=utcnow() - timedelta(minutes=5)),
            ]
        )  # fmt: skip
    for ref in (batch_id, batch_id[:6], "nightly", other, "older"):
        with session_scope(postgres_url) as session:
            expected = batch_status(session, ref)
        assert read_status(postgres_url, ref) == expected, ref
    assert read_status(postgres_url, batch_id).reserved_usd == money(0.25)  # type: ignore[union-attr]
    with pytest.raises(UnknownBatch):
        read_status(postgres_url, "nope")
    assert read_status("sqlite:///x.db", batch_id) is None  # the SQLAlchemy path's
    assert read_status(postgres_url + "?connect_timeout=5", batch_id) is None


@pytest.mark.postgres
def test_the_direct_read_refuses_a_ledger_behind_the_head(postgres_url: str) -> None:
    from ledger.status import read_status

    with pytest.raises(LedgerSchemaError, match="has no batchrouter tables"):
        read_status(postgres_url, "any")
