"""Budgets on SQLite and PostgreSQL, and under three real worker processes sharing one batch.

A call reserves its estimate before it runs (one conditional UPDATE per scope) and is settled
to its real cost after. Under concurrent workers a batch with a small budget must pause with a
clear status, its spend must stay within the budget plus what the calls in flight could cost,
and raising the budget must resume it to the end. The same holds for a project's budget.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from batchrouter.cli import app
from ledger.batches import BatchStatus, live_reserved, register_batch
from ledger.budgets import release_expired, reserve, set_project_budget, settle
from ledger.db import session_scope
from ledger.models import Attempt, Batch, ProjectBudget
from ledger.money import money
from routing.config import load_config
from routing.types import InputItem
from tests.conftest import EXAMPLES
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.timeout(300)]
WORKERS, CONCURRENCY, CHUNK = 3, 4, 5
LABELS = ["billing", "refund_request", "shipping_delay", "account_access", "password_reset"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def _batch(budget: float | None = None, project: str | None = None) -> str:
    with session_scope() as session:
        batch_id, _ = register_batch(
            session,
            items=[InputItem(external_id="x", text="t", line_no=1)],
            task_type="tickets",
            entry_tier="t0",
            config_yaml="{}",
            config_source="test",
            project=project,
            budget_usd=budget,
        )
    return batch_id


def test_reservations_are_atomic_across_concurrent_writers(ledger_url: str) -> None:
    """16 threads race 400 reservations of $0.10 for a $10 batch budget and a $7 project
    budget: exactly 70 succeed, none beyond either budget, and settling balances."""
    batch_id = _batch(budget=10.0, project="acme")
    with session_scope() as session:
        set_project_budget(session, "acme", 7.0)
    granted: list[bool] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(25):
            with session_scope() as session:
                ok = reserve(session, batch_id, 0.1).ok
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 70
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        project = session.get(ProjectBudget, "acme")
        assert batch is not None and project is not None
        assert batch.reserved_usd == money(7) == project.reserved_usd
        for _ in range(70):
            settle(session, batch_id, reserved=0.1, actual=0.05)
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert (batch.spent_usd, batch.reserved_usd) == (money(3.5), money(0))


# --- three real worker processes on one tier, PostgreSQL ----------------------------------


# One call: ~60 prompt tokens x $100 + 16 output tokens x $400 per 1M: an estimate of about
# $0.0125; the sim answers in 1-3 tokens, so a call really costs about $0.007.
def routing_file(path: Path) -> Path:
    config = {
        "deployments": {
            "sim": {
                "provider": "sim",
                "model": "sim-budget",
                "prices": {"input": 100.0, "output": 400.0},
                "max_output_tokens": 16,
                "sim": {"skill": 0.9, "latency_ms": 1000, "seed": 5},
            }
        },
        "tiers": [{"name": "t0", "deployments": ["sim"]}],
        "task_types": {
            "tickets": {
                "ladder": ["t0"],
                "prompt": "Labels: {labels}\nTicket: {text}\nLabel:",
                "checks": [{"kind": "label", "labels": LABELS}],
                "max_attempts": 3,
            }
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def input_file(path: Path, count: int) -> Path:
    with path.open("w") as out:
        for i in range(count):
            label = LABELS[i % len(LABELS)]
            text = f"ticket {i}: please help with my {label.replace('_', ' ')} issue"
            out.write(json.dumps({"id": i, "text": text, "expected": label}) + "\n")
    return path


def max_call_estimate(config_path: Path, source: Path) -> float:
    """The largest estimate any call of these items reserves (prompt + output limit)."""
    from routing.prompts import render_messages
    from routing.tokens import count_message_tokens

    config = load_config(config_path)
    task, prices = config.task_types["tickets"], config.prices_for("sim")
    longest = max(
        count_message_tokens(render_messages(task, json.loads(line)["text"], {}, None), "sim")
        for line in source.read_text().splitlines()
    )
    return (longest * prices.input + 16 * prices.output) / 1e6


def wait_until_paused(batch_id: str, timeout: float = 120) -> BatchStatus:
    """Paused, and every call in flight settled (no item running, nothing reserved)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = batch_status(batch_id)
        settled = not status.by_state.get("running") and abs(status.reserved_usd) < 1e-9
        if status.state == "paused" and settled:
            return status
        assert not status.finished, "the batch ended without reaching its budget"
        time.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} did not pause: {batch_status(batch_id)}")


def attempts_cost(batch_ids: list[str]) -> Decimal:
    with session_scope() as session:
        costs = session.scalars(select(Attempt.cost_usd).where(Attempt.batch_id.in_(batch_ids)))
        return sum(costs, money(0))  # added in Python, exactly


@pytest.fixture
def workers_env(
    monkeypatch: pytest.MonkeyPatch, use_ledger, postgres_url: str, redis_url: str, tmp_path: Path
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATCHROUTER_CHUNK_SIZE", str(CHUNK))
    url = use_ledger(postgres_url)
    config = routing_file(tmp_path / "rules.yaml")
    with ExitStack() as stack:
        for n in range(WORKERS):  # three processes on the same queue, as on three hosts
            log_dir = tmp_path / f"w{n}"
            log_dir.mkdir()
            stack.enter_context(
                running_workers(
                    ["t0"],
                    database_url=url,
                    broker_url=redis_url,
                    log_dir=log_dir,
                    config=config,
                    concurrency=CONCURRENCY,
                    extra_env={"BATCHROUTER_CHUNK_SIZE": str(CHUNK)},
                )
            )
        yield config


# At most WORKERS x CONCURRENCY messages run at once, each with CHUNK items in flight.
MAX_IN_FLIGHT = WORKERS * CONCURRENCY * CHUNK


@pytest.mark.redis
@pytest.mark.postgres
def test_a_small_budget_pauses_the_batch_and_raising_it_resumes_to_the_end(
    workers_env: Path, tmp_path: Path
) -> None:
    config, budget = workers_env, Decimal("0.40")
    source = input_file(tmp_path / "tickets.jsonl", 150)
    slack = money(MAX_IN_FLIGHT * max_call_estimate(config, source))
    runner = CliRunner()
    args = ["submit", str(source), "--type", "tickets", "--config", str(config)]
    submitted = runner.invoke(app, [*args, "--budget", str(budget), "--name", "capped"])
    assert submitted.exit_code == 0, submitted.output
    batch_id = submitted.stdout.strip().splitlines()[-1]

    paused = wait_until_paused(batch_id)
    assert paused.paused_reason is not None
    assert paused.paused_reason.startswith(f"budget of $0.4000 for batch {batch_id} exhausted")
    assert 0 < paused.done < 150 and paused.by_state.get("queued", 0) > 0
    assert paused.spent_usd <= budget + slack
    assert paused.spent_usd == attempts_cost([batch_id])
    overshoot = paused.spent_usd - budget
    print(f"\nbatch budget ${budget}: spent ${paused.spent_usd:.4f} (overshoot ${overshoot:.4f})")
    shown = runner.invoke(app, ["status", batch_id])
    assert "paused: budget of $0.4000" in shown.stdout
    assert "budget $0.4000, spent $" in shown.stdout

    raised = runner.invoke(app, ["budget", "capped", "--set", "5"])
    assert raised.exit_code == 0, raised.output
    assert "resumed 1 paused batches" in raised.output
    final = wait_for_batch(batch_id, timeout=120)
    assert final.done == 150 and final.state == "finished"
    assert final.spent_usd == attempts_cost([batch_id])
    assert final.reserved_usd == 0 and final.spent_usd < 5


@pytest.mark.redis
@pytest.mark.postgres
def test_a_project_budget_pauses_all_its_batches_and_raising_it_resumes_them(
    workers_env: Path, tmp_path: Path
) -> None:
    config, budget = workers_env, Decimal("0.30")
    source = input_file(tmp_path / "tickets.jsonl", 60)
    slack = money(MAX_IN_FLIGHT * max_call_estimate(config, source))
    runner = CliRunner()
    assert runner.invoke(app, ["budget", "--project", "acme", "--set", str(budget)]).exit_code == 0
    ids = [
        submit_batch(source, "tickets", config=config, project="acme").batch_id for _ in range(2)
    ]
    statuses = [wait_until_paused(batch_id) for batch_id in ids]
    for status in statuses:
        assert status.paused_reason is not None
        assert status.paused_reason.startswith("budget of $0.3000 for project acme exhausted")
    with session_scope() as session:
        project = session.get(ProjectBudget, "acme")
        assert project is not None
        spent = project.spent_usd
    assert spent == attempts_cost(ids)
    assert spent <= budget + slack
    print(f"\nproject budget ${budget}: spent ${spent:.4f} (overshoot ${spent - budget:.4f})")

    raised = runner.invoke(app, ["budget", "--project", "acme", "--set", "10"])
    assert "resumed 2 paused batches" in raised.output, raised.output
    for batch_id in ids:
        assert wait_for_batch(batch_id, timeout=120).done == 60


def test_the_budget_command_shows_and_refuses_bad_usage(ledger_url: str) -> None:
    runner = CliRunner()
    batch_id = _batch(budget=2.0)
    shown = runner.invoke(app, ["budget", batch_id])
    assert "budget $2.0000, spent $0.0000, reserved $0.0000" in shown.output
    unlimited = runner.invoke(app, ["budget", batch_id, "--unlimited"])
    assert "budget unlimited" in unlimited.output
    assert "no budget (unlimited)" in runner.invoke(app, ["budget", "--project", "x"]).output
    assert runner.invoke(app, ["budget"]).exit_code == 2
    assert runner.invoke(app, ["budget", batch_id, "--set", "-1"]).exit_code == 2
    assert runner.invoke(app, ["budget", "nope", "--set", "1"]).exit_code == 2


def test_examples_routing_file_still_loads() -> None:
    assert load_config(EXAMPLES / "routing.yaml").tier("tier0").strategy == "ordered"


def _figures(batch_id: str) -> tuple[Decimal, Decimal, Decimal]:
    """(spent, reserved counter, live reserved as status shows it)."""
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.spent_usd, batch.reserved_usd, live_reserved(session, batch_id=batch_id)


def test_a_hold_whose_worker_died_ends_with_its_lease_counted_as_spent(ledger_url: str) -> None:
    batch_id = _batch(budget=1.0)
    with session_scope() as session:
        assert reserve(session, batch_id, 0.6, lease_s=0.2).ok  # ... and its worker dies
    assert _figures(batch_id) == (0, money(0.6), money(0.6))
    assert batch_status(batch_id).reserved_usd == money(0.6)
    time.sleep(0.3)
    # The lease is over: status no longer counts the hold, before anything released it.
    assert batch_status(batch_id).reserved_usd == 0.0
    with session_scope() as session:
        # The next reservation that finds no room releases it first. The dead call may have
        # been billed: its estimate is spent, so 0.6 more does not fit a $1 budget, 0.4 does.
        refused = reserve(session, batch_id, 0.6)
        assert not refused.ok and "spent $0.6000" in (refused.reason or "")
        assert reserve(session, batch_id, 0.4).ok
    assert _figures(batch_id) == (money(0.6), money(0.4), money(0.4))


def test_the_reconciler_releases_expired_holds_and_a_late_settle_corrects_the_spend(
    ledger_url: str,
) -> None:
    batch_id = _batch(budget=5.0, project="lease-test")
    with session_scope() as session:
        set_project_budget(session, "lease-test", 10.0)
        slow = reserve(session, batch_id, 0.5, lease_s=0.1)
        live = reserve(session, batch_id, 0.25, lease_s=600)
    assert slow.ok and live.ok and slow.id != live.id
    time.sleep(0.2)
    with session_scope() as session:
        assert release_expired(session) == 1  # what the reconciler runs
        assert release_expired(session) == 0  # once only, from any number of hosts
    assert _figures(batch_id) == (money(0.5), money(0.25), money(0.25))
    with session_scope() as session:
        # The slow worker was alive after all: its settle replaces the estimate with the cost.
        settle(session, batch_id, reserved=0.5, actual=0.2, reservation_id=slow.id)
        settle(session, batch_id, reserved=0.25, actual=0.25, reservation_id=live.id)
        project = session.get(ProjectBudget, "lease-test")
        assert project is not None
        assert (project.spent_usd, project.reserved_usd) == (money(0.45), 0)
    assert _figures(batch_id) == (money(0.45), 0, 0)
