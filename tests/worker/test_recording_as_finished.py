"""A chunk's items are recorded as they finish (worker/recorder.py), not when its slowest item
ends: the fast items are settled (an escalated one queued on the next tier) while a slow one is
still running, and everything is recorded once. One item is held back by a gate around its
round, so the test decides what is still running instead of timing it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ledger.batches import register_batch
from ledger.db import session_scope
from ledger.models import Attempt, Item
from routing.types import InputItem
from worker import loop, pipeline
from worker.pipeline import ChunkSummary, HandBack

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

RULES = """\
deployments:
  cheap: {provider: sim, model: sim-cheap, prices: {input: 0.1, output: 0.4}, sim: {skill: 1.0, latency_ms: 0}}
  big: {provider: sim, model: sim-big, prices: {input: 2.0, output: 8.0}, sim: {skill: 1.0, latency_ms: 0}}
tiers:
  - {name: t0, deployments: [cheap]}
  - {name: t1, deployments: [big]}
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label: {text}"
    checks:
      - {kind: label, labels: [a, b]}
"""


@pytest.fixture
def ledger(use_ledger, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """A PostgreSQL ledger; publishes are captured (tier, ids, countdown)."""
    use_ledger(postgres_url)
    published: list = []
    monkeypatch.setattr(
        pipeline,
        "publish_items",
        lambda ids, tier, chunk, countdown=None: published.append((tier, list(ids), countdown)),
    )
    yield published


def submit(n: int) -> list[int]:
    """n items: the first n-1 answer `a` (pass on t0), except the second, whose expected label
    is outside the set (escalates to t1); the last is the slow one."""
    items = [
        InputItem(
            external_id=str(k), text=f"ticket {k}", line_no=k, expected="zz" if k == 1 else "a"
        )
        for k in range(n)
    ]
    with session_scope() as session:
        _, ids = register_batch(
            session, items=items, task_type="tickets", entry_tier="t0",
            config_yaml=RULES, config_source="rules.yaml",
        )  # fmt: skip
    return ids


def hold_back(monkeypatch: pytest.MonkeyPatch, slow_id: int) -> threading.Event:
    """The slow item's round waits until the returned gate opens."""
    gate = threading.Event()
    real = pipeline.run_item

    async def run_item(item, *args, **kwargs):  # type: ignore[no-untyped-def]
        if item.id == slow_id:
            while not gate.is_set():
                await asyncio.sleep(0.01)
        return await real(item, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_item", run_item)
    return gate


def states(ids: list[int]) -> dict[int, tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(select(Item.id, Item.state, Item.tier).where(Item.id.in_(ids)))
        return {row.id: (row.state, row.tier) for row in rows}


def attempts_per_item(ids: list[int]) -> dict[int, int]:
    with session_scope() as session:
        rows = session.execute(
            select(Attempt.item_id, func.count())
            .where(Attempt.item_id.in_(ids))
            .group_by(Attempt.item_id)
        )
        return dict(rows.all())  # type: ignore[arg-type]


def settled(ids: list[int]) -> bool:
    """Each of these items succeeded or was escalated to t1 (not just queued or running on t0)."""
    return all(state == "succeeded" or tier == "t1" for state, tier in states(ids).values())


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the fast items were never recorded"
        time.sleep(0.05)


def run_in_thread(ids: list[int], token: str) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["summary"] = pipeline.process_chunk(ids, "t0", token=token)
        except BaseException as exc:  # handed to the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_fast_items_are_recorded_while_a_slow_one_runs(
    ledger: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = submit(6)
    fast, escalated, slow = ids[:-1], ids[1], ids[-1]
    gate = hold_back(monkeypatch, slow)
    thread, out = run_in_thread(ids, uuid.uuid4().hex)
    try:
        wait_for(lambda: settled(fast))
        now = states(ids)
        assert now[slow] == ("running", "t0") and thread.is_alive()
        assert now[escalated] == ("queued", "t1")
        assert all(now[i] == ("succeeded", "t0") for i in fast if i != escalated)
        assert ("t1", [escalated], None) in ledger  # published before the slow item ended
    finally:
        gate.set()
        thread.join(30)
    summary: ChunkSummary = out["summary"]
    assert states([slow])[slow] == ("succeeded", "t0")
    assert summary.claimed == summary.recorded == 6
    assert summary.by_state == {"succeeded": 5, "queued": 1}
    assert summary.escalated_to == {"t1": 1}
    assert attempts_per_item(ids) == {i: 1 for i in ids}


def test_a_chunk_stopped_after_a_group_hands_back_only_the_rest(
    ledger: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's stop cuts the chunk after its first group was written: the message comes
    back, and its redelivery (same token) continues the unrecorded item alone, with nothing
    written twice."""
    ids = submit(4)
    slow = ids[-1]
    gate = hold_back(monkeypatch, slow)
    token = uuid.uuid4().hex
    thread, out = run_in_thread(ids, token)
    wait_for(lambda: settled(ids[:-1]))
    assert loop.cancel_running() >= 1
    thread.join(30)
    assert isinstance(out.get("error"), HandBack)
    assert "1 items handed back" in str(out["error"])
    assert states([slow])[slow] == ("running", "t0")
    recorded = attempts_per_item(ids)

    gate.set()
    again = pipeline.process_chunk(ids, "t0", token=token)  # the redelivered message
    assert again.claimed == again.recorded == 1
    assert states([slow])[slow] == ("succeeded", "t0")
    after = attempts_per_item(ids)
    assert after[slow] == 1
    assert {i: after[i] for i in ids[:-1]} == {i: recorded[i] for i in ids[:-1]}
    assert after == {i: 1 for i in ids}
