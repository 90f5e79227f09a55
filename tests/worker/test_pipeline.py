"""The example batch through real worker processes, a real Redis broker, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from batchrouter.api import batch_report, export_results, submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt, Item
from routing.config import load_config
from tests.conftest import EXAMPLES
from tests.helpers.workers import running_workers
from worker.publish import publish_items

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]
CONFIG = EXAMPLES / "routing.yaml"
LADDER = load_config(CONFIG).task_types["ticket_classification"].tier_names


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def attempts_by_item(batch_id: str) -> dict[int, list[Attempt]]:
    with session_scope() as session:
        rows = session.scalars(
            select(Attempt).where(Attempt.batch_id == batch_id).order_by(Attempt.attempt_no)
        ).all()
    grouped: dict[int, list[Attempt]] = defaultdict(list)
    for row in rows:
        grouped[row.item_id].append(row)
    return grouped


def items_of(batch_id: str) -> dict[int, Item]:
    with session_scope() as session:
        return {i.id: i for i in session.scalars(select(Item).where(Item.batch_id == batch_id))}


def test_example_batch_runs_to_the_end(ledger_url: str, redis_url: str, tmp_path: Path) -> None:
    source = EXAMPLES / "tickets.jsonl"
    with running_workers(LADDER, database_url=ledger_url, broker_url=redis_url, log_dir=tmp_path):
        submitted = submit_batch(source, "ticket_classification", config=CONFIG, name="it")
        status = wait_for_batch(submitted.batch_id, timeout=300)

    assert status.total == submitted.items == 600
    assert status.succeeded + status.failed == 600

    items = items_of(submitted.batch_id)
    attempts = attempts_by_item(submitted.batch_id)
    assert set(attempts) == set(items), "every item was attempted at least once"
    escalated = 0
    for item_id, rows in attempts.items():
        item = items[item_id]
        assert [a.attempt_no for a in rows] == list(range(1, len(rows) + 1))
        positions = [LADDER.index(a.tier) for a in rows]
        # The attempts climb the ladder from its first rung, one rung at a time, never down.
        assert positions[0] == 0
        assert all(b - a in (0, 1) for a, b in zip(positions, positions[1:], strict=False))
        assert rows[-1].tier == item.tier
        assert item.attempts == len(rows)
        assert item.cost_usd == sum(a.cost_usd for a in rows)
        if item.state == "succeeded":
            assert rows[-1].outcome == "passed" and item.output == rows[-1].output
        escalated += positions[-1] > 0
    assert escalated > 0, "the cheap tier's failures were escalated"

    report = batch_report(submitted.batch_id)
    with session_scope() as session:
        total_cost = session.scalar(
            select(func.sum(Attempt.cost_usd)).where(Attempt.batch_id == submitted.batch_id)
        )
        total_attempts = session.scalar(
            select(func.count()).where(Attempt.batch_id == submitted.batch_id)
        )
    assert report.cost_usd == total_cost
    assert sum(line.cost_usd for line in report.by_tier) == total_cost
    assert sum(line.cost_usd for line in report.by_model) == total_cost
    assert report.attempts == total_attempts
    assert report.by_tier[0].items_received == 600
    assert sum(line.resolved for line in report.by_tier) == status.succeeded
    assert report.by_tier[0].escalated == report.by_tier[1].items_received
    assert report.premium_only_cost_usd > report.cost_usd > 0
    assert report.simulated

    out = tmp_path / "results.jsonl"
    assert export_results(submitted.batch_id, out) == 600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    source_ids = [json.loads(line)["id"] for line in source.read_text().splitlines()]
    assert [line["id"] for line in lines] == source_ids
    by_id = {line["id"]: line for line in lines}
    for item in items.values():
        assert by_id[item.external_id]["state"] == item.state
        assert by_id[item.external_id]["attempts"] == item.attempts


def _wait_until_drained(broker_url: str, queues: list[str], timeout: float = 60) -> None:
    """Until no message waits on the queues or sits unacked in a worker."""
    client = redis.Redis.from_url(broker_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = sum(client.llen(q) for q in queues) + client.hlen("unacked")
        if waiting == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"queues not drained after {timeout} s")


def test_a_message_delivered_twice_leaves_one_attempt_row(
    ledger_url: str, redis_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:80]))
    submitted = submit_batch(source, "ticket_classification", config=CONFIG)
    with session_scope() as session:
        ids = list(session.scalars(select(Item.id).where(Item.batch_id == submitted.batch_id)))
    publish_items(ids, LADDER[0], chunk_size=7)  # every item on tier0 twice, chunked differently

    with running_workers(LADDER, database_url=ledger_url, broker_url=redis_url, log_dir=tmp_path):
        wait_for_batch(submitted.batch_id, timeout=120)
        before = attempts_by_item(submitted.batch_id)
        for tier in LADDER:  # and once more on every tier, after the batch finished
            publish_items(ids, tier, chunk_size=10)
        _wait_until_drained(redis_url, LADDER)

    after = attempts_by_item(submitted.batch_id)
    assert {k: [a.id for a in v] for k, v in after.items()} == {
        k: [a.id for a in v] for k, v in before.items()
    }
    for rows in after.values():
        tiers = [a.tier for a in rows]
        # sim answers never error, so one call per tier: a duplicate would show as a repeat
        assert len(tiers) == len(set(tiers))
