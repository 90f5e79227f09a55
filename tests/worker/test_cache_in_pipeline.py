"""The response cache and in-batch duplicates through real workers, Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from batchrouter.api import batch_report, submit_batch, wait_for_batch
from ledger.batches import batch_status, register_batch
from ledger.db import session_scope
from ledger.lifecycle import cancel_batch, retry_failed
from ledger.models import Attempt, CachedResponse, Item
from ledger.outcomes import USAGE_KEYS, AttemptRecord, ItemOutcome
from ledger.transitions import claim_items, record_outcomes
from producers.readers import read_items
from routing.config import load_config
from tests.conftest import EXAMPLES
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]
CONFIG = EXAMPLES / "routing.yaml"
TASK = "ticket_classification"
LADDER = load_config(CONFIG).task_types[TASK].tier_names


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


@pytest.fixture
def sqlite_ledger(use_ledger, sqlite_url: str) -> str:
    return use_ledger(sqlite_url)


def tickets(tmp_path: Path, count: int, copies: int = 1, name: str = "in.jsonl") -> Path:
    """`count` distinct tickets, each `copies` times (under different ids)."""
    rows = [json.loads(line) for line in (EXAMPLES / "tickets.jsonl").open()][:count]
    path = tmp_path / name
    with path.open("w") as out:
        for copy in range(copies):
            for row in rows:
                out.write(json.dumps({**row, "id": f"{row['id']}-{copy}"}) + "\n")
    return path


def config_with(tmp_path: Path, extra: str) -> Path:
    """The example routing file with `extra` lines added to the ticket task type."""
    text = (CONFIG).read_text()
    marker = "    max_attempts: 6\n"
    path = tmp_path / "routing.yaml"
    path.write_text(text.replace(marker, marker + extra, 1))
    return path


def items_and_attempts(batch_id: str) -> tuple[dict[int, Item], dict[int, list[Attempt]]]:
    with session_scope() as session:
        items = {i.id: i for i in session.scalars(select(Item).where(Item.batch_id == batch_id))}
        rows = session.scalars(
            select(Attempt).where(Attempt.batch_id == batch_id).order_by(Attempt.attempt_no)
        ).all()
        session.expunge_all()
    attempts: dict[int, list[Attempt]] = defaultdict(list)
    for row in rows:
        attempts[row.item_id].append(row)
    return items, attempts


def run_batches(url: str, redis_url: str, tmp_path: Path, *runs: tuple[Path, Path]) -> list[str]:
    ids = []
    with running_workers(LADDER, database_url=url, broker_url=redis_url, log_dir=tmp_path):
        for source, config in runs:
            submitted = submit_batch(source, TASK, config=config)
            wait_for_batch(submitted.batch_id, timeout=240)
            ids.append(submitted.batch_id)
    return ids


def test_a_second_batch_is_served_from_the_cache(
    ledger_url: str, redis_url: str, tmp_path: Path
) -> None:
    source = tickets(tmp_path, 40)
    first, second = run_batches(ledger_url, redis_url, tmp_path, (source, CONFIG), (source, CONFIG))
    items1, attempts1 = items_and_attempts(first)
    items2, attempts2 = items_and_attempts(second)
    assert not any(a.cache_hit for rows in attempts1.values() for a in rows)
    answered1 = [
        a
        for rows in attempts1.values()
        for a in rows
        if a.error_class is None and a.outcome in ("passed", "check_failed")
    ]
    with session_scope() as session:
        # every answer a call gave is cached, whatever its verdict; errors are not
        assert session.scalar(select(func.count()).select_from(CachedResponse)) == len(answered1)

    twin = {i.external_id: i for i in items1.values()}
    hits = served_whole = 0
    for item_id, item in items2.items():
        before = twin[item.external_id]
        rows1, rows2 = attempts1[before.id], attempts2[item_id]
        hits += sum(a.cache_hit for a in rows2)
        for row in rows2:
            assert not row.cache_hit or (row.cost_usd == 0 and row.latency_ms == 0)
        if any(a.error_class for a in rows1):
            continue  # an error is called again, and may not fail the same way
        # The same path as the first run, every answer from the cache: the same verdicts, the
        # same result, no provider call, and the saving is what each call cost the first time.
        assert [(a.tier, a.deployment, a.outcome) for a in rows2] == [
            (a.tier, a.deployment, a.outcome) for a in rows1
        ]
        assert all(a.cache_hit for a in rows2)
        assert [a.saved_usd for a in rows2] == [a.cost_usd for a in rows1]
        # Issue 16: each hit carries the usage of the call that earned it, not a re-estimate.
        assert [[getattr(a, key) for key in USAGE_KEYS] for a in rows2] == [
            [getattr(a, key) for key in USAGE_KEYS] for a in rows1
        ]
        assert (item.state, item.output, item.tier) == (before.state, before.output, before.tier)
        served_whole += 1
    assert served_whole >= 20
    with session_scope() as session:
        assert session.scalar(select(func.sum(CachedResponse.hits))) == hits
    # The same items price the same premium-only figure whether paid for or served.
    assert batch_report(second).premium_only_cost_usd == batch_report(first).premium_only_cost_usd


def test_cache_false_makes_fresh_calls(sqlite_ledger: str, redis_url: str, tmp_path: Path) -> None:
    source = tickets(tmp_path, 20)
    config = config_with(tmp_path, "    cache: false\n")
    first, second = run_batches(
        sqlite_ledger, redis_url, tmp_path, (source, config), (source, config)
    )
    for batch_id in (first, second):
        _, attempts = items_and_attempts(batch_id)
        assert len(attempts) == 20
        assert not any(a.cache_hit for rows in attempts.values() for a in rows)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(CachedResponse)) == 0


def test_duplicates_in_a_batch_are_called_once(
    ledger_url: str, redis_url: str, tmp_path: Path
) -> None:
    source = tickets(tmp_path, 10, copies=3)
    (batch_id,) = run_batches(ledger_url, redis_url, tmp_path, (source, CONFIG))
    items, attempts = items_and_attempts(batch_id)
    assert len(items) == 30
    called = {a.item_id for rows in attempts.values() for a in rows if not a.cache_hit}
    assert len(called) == 10
    leaders = {i.id: i for i in items.values() if i.duplicate_of is None}
    assert set(leaders) == called and all(i.duplicates == 2 for i in leaders.values())
    for item in items.values():
        if item.duplicate_of is None:
            continue
        leader = leaders[item.duplicate_of]
        assert (item.state, item.output, item.tier, item.model) == (
            leader.state,
            leader.output,
            leader.tier,
            leader.model,
        )
        [row] = attempts[item.id]
        assert row.cache_hit and row.cost_usd == 0 and row.attempt_no == 1
        assert row.saved_usd == leader.cost_usd
        assert row.outcome == ("passed" if leader.state == "succeeded" else row.outcome)
    with session_scope() as session:
        status = batch_status(session, batch_id)
    assert status.finished and status.done == 30


def test_cancel_settles_waiting_followers(
    sqlite_ledger: str, redis_url: str, tmp_path: Path
) -> None:
    source = tickets(tmp_path, 5, copies=3)
    # no workers: everything stays queued or waiting until the cancel
    submitted = submit_batch(source, TASK, config=CONFIG)
    assert submitted.duplicates == 10
    with session_scope() as session:
        assert batch_status(session, submitted.batch_id).by_state == {"queued": 5, "waiting": 10}
        assert cancel_batch(session, submitted.batch_id) == 15
    with session_scope() as session:
        status = batch_status(session, submitted.batch_id)
    assert status.by_state == {"cancelled": 15} and status.finished


def _register(tmp_path: Path, copies: int = 3) -> tuple[str, list[int]]:
    items = read_items(tickets(tmp_path, 2, copies=copies))
    with session_scope() as session:
        return register_batch(
            session,
            items=items,
            task_type=TASK,
            entry_tier=LADDER[0],
            config_yaml=CONFIG.read_text(),
            config_source=str(CONFIG),
            dedupe=True,
        )


def test_a_failed_leader_fails_its_followers_and_retry_frees_them(
    sqlite_ledger: str, tmp_path: Path
) -> None:
    batch_id, published = _register(tmp_path)
    assert len(published) == 2  # the leaders only
    with session_scope() as session:
        claimed = claim_items(session, published, LADDER[0], "token-1")
        call = AttemptRecord(1, LADDER[0], "sim-nano", "sim", "sim-nano", "check_failed")
        call.output, call.cost_usd, call.input_tokens = "nonsense", 0.001, 50
        outcome = ItemOutcome(
            claimed[0].id, batch_id, LADDER[0], [call], "failed", LADDER[-1], output="nonsense",
            deployment="sim-nano", model="sim-nano", error="last tier failed its checks",
            claim_no=claimed[0].claim_no,
        )  # fmt: skip
        record_outcomes(session, [outcome])
    items, attempts = items_and_attempts(batch_id)
    followers = [i for i in items.values() if i.duplicate_of == claimed[0].id]
    assert len(followers) == 2
    for follower in followers:
        assert (follower.state, follower.output, follower.tier) == (
            "failed",
            "nonsense",
            LADDER[-1],
        )
        [row] = attempts[follower.id]
        assert row.cache_hit and row.outcome == "check_failed" and row.saved_usd == Decimal("0.001")
    with session_scope() as session:
        status = batch_status(session, batch_id)
        assert status.by_state == {"failed": 3, "running": 1, "waiting": 2}
        assert status.done == 3
        again = retry_failed(session, batch_id)
    # the leader retries where it failed; its followers as ordinary items on the entry tier
    assert sorted(again[LADDER[-1]]) == [claimed[0].id]
    assert sorted(again[LADDER[0]]) == sorted(f.id for f in followers)
    items, _ = items_and_attempts(batch_id)
    assert all(items[f.id].duplicate_of is None for f in followers)
