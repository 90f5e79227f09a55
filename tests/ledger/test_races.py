"""Races on purpose: several processes make the same ledger call on the same rows at the same
moment (a barrier releases them together), round after round, on SQLite and on PostgreSQL.

Each guard must hold on both databases: SQLite has no row locks, and it accepts and ignores
every FOR UPDATE, so the guarantees rest on its write transaction taken at BEGIN IMMEDIATE
(ledger/db.py), on compare-and-set updates and on unique keys. Every test runs ROUNDS rounds
and reports how many broke, so a run against older code says how often it fails.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from ledger.batches import register_batch
from ledger.budgets import set_project_budget
from ledger.cache import CacheEntry
from ledger.db import session_scope
from ledger.models import (
    Attempt,
    Batch,
    CachedResponse,
    Item,
    ProjectBudget,
    ProviderBatch,
    utcnow,
)
from ledger.outcomes import AttemptRecord, ItemOutcome
from ledger.transitions import claim_items
from routing.types import InputItem
from tests.helpers.race import Racers, Raised

RACERS = 4
ROUNDS = int(os.environ.get("BATCHROUTER_RACE_ROUNDS", "8"))

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def racers() -> Iterator[Racers]:
    started = Racers(RACERS)
    yield started
    started.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def _register(
    texts: list[str],
    *,
    tier: str = "t0",
    dedupe: bool = False,
    project: str | None = None,
    budget_usd: float | None = None,
    config: Path | None = None,
) -> tuple[str, list[int]]:
    with session_scope() as session:
        return register_batch(
            session,
            items=[
                InputItem(external_id=f"x{n}", text=text, line_no=n + 1)
                for n, text in enumerate(texts)
            ],
            task_type="ticket_classification" if config else "tickets",
            entry_tier=tier,
            config_yaml=config.read_text() if config else "{}",
            config_source=str(config or "test"),
            dedupe=dedupe,
            project=project,
            budget_usd=budget_usd,
        )


def _claim(item_ids: list[int], tier: str = "t0") -> dict[int, int]:
    with session_scope() as session:
        return {item.id: item.claim_no for item in claim_items(session, item_ids, tier, "msg")}


def _call(item_id: int, batch_id: str, claim_no: int, state: str) -> ItemOutcome:
    record = AttemptRecord(
        attempt_no=1, tier="t0", deployment="d", provider="sim", model="m",
        outcome="passed" if state == "succeeded" else "check_failed", cost_usd=0.25,
        output="out",
    )  # fmt: skip
    return ItemOutcome(
        item_id=item_id, batch_id=batch_id, tier="t0", attempts=[record], next_state=state,
        next_tier="t0", output="out", deployment="d", model="m", claim_no=claim_no,
    )  # fmt: skip


def _no_call(item_id: int, batch_id: str, claim_no: int, state: str) -> ItemOutcome:
    return ItemOutcome(
        item_id=item_id, batch_id=batch_id, tier="t0", attempts=[], next_state=state,
        next_tier="t0", error="no call", claim_no=claim_no,
    )  # fmt: skip


def _raised(results: list) -> list[str]:
    return [r.splitlines()[0][:160] for r in results if isinstance(r, Raised)]


def _verdict(broken: list[str]) -> None:
    assert not broken, f"{len(broken)} of {ROUNDS} rounds broke:\n" + "\n".join(broken)


def test_each_item_is_claimed_by_exactly_one_process(racers: Racers, ledger_url: str) -> None:
    broken = []
    for round_no in range(ROUNDS):
        _, ids = _register([f"claim {round_no} {n}" for n in range(20)])
        results = racers.run("claim", ledger_url, item_ids=ids, tier="t0")
        claimed = Counter(i for r in results if not isinstance(r, Raised) for i in r)
        problems = _raised(results)
        if sorted(claimed) != ids or set(claimed.values()) != {1}:
            problems.append(f"claimed {dict(claimed)}")
        if problems:
            broken.append(f"round {round_no}: {problems}")
    _verdict(broken)


def test_the_same_claims_outcome_is_written_once(racers: Racers, ledger_url: str) -> None:
    """The attempt rows once, one state change, the batch counted and finished once."""
    broken = []
    for round_no in range(ROUNDS):
        batch_id, ids = _register([f"outcome {round_no} {n}" for n in range(6)])
        claims = _claim(ids)
        outcomes = [_call(i, batch_id, claims[i], "succeeded") for i in ids[:3]]
        outcomes += [_no_call(i, batch_id, claims[i], "failed") for i in ids[3:]]
        results = racers.run("record", ledger_url, outcomes=outcomes)
        problems = _raised(results)
        ok = [r for r in results if not isinstance(r, Raised)]
        written = Counter(i for item_ids, _ in ok for i in item_ids)
        finished = [f for _, done in ok for f in done]
        with session_scope() as session:
            attempts = session.scalar(select(func.count()).where(Attempt.batch_id == batch_id))
            calls = session.scalar(select(func.sum(Item.attempts)).where(Item.batch_id == batch_id))
            done = session.scalar(select(Batch.done).where(Batch.id == batch_id))
        if set(written.values()) != {1} or sorted(written) != ids:
            problems.append(f"written {dict(written)}")
        if (attempts, calls, done, finished) != (3, 3, 6, [batch_id]):
            problems.append(f"attempts {attempts}, calls {calls}, done {done}, finished {finished}")
        problems += _outcomes_without_calls_counted_once(racers, ledger_url, round_no)
        if problems:
            broken.append(f"round {round_no}: {problems}")
    _verdict(broken)


def _outcomes_without_calls_counted_once(racers: Racers, url: str, round_no: int) -> list[str]:
    """No attempt row, so no unique key to stop a second write: only the claim check does
    (items failed before any call, or staged for a provider batch)."""
    batch_id, ids = _register([f"no call {round_no} {n}" for n in range(4)])
    claims = _claim(ids)
    outcomes = [_no_call(i, batch_id, claims[i], "failed") for i in ids]
    results = racers.run("record", url, outcomes=outcomes)
    problems = _raised(results)
    finished = [f for r in results if not isinstance(r, Raised) for f in r[1]]
    with session_scope() as session:
        done = session.scalar(select(Batch.done).where(Batch.id == batch_id))
    if (done, finished) != (4, [batch_id]):
        problems.append(f"without calls: done {done} of 4, finished {finished}")
    return problems


def test_duplicate_followers_settle_once_with_their_leader(racers: Racers, ledger_url: str) -> None:
    broken = []
    for round_no in range(ROUNDS):
        texts = [f"dup {round_no} {n % 3}" for n in range(9)]  # 3 leaders, 2 followers each
        batch_id, leaders = _register(texts, dedupe=True)
        claims = _claim(leaders)
        outcomes = [
            _call(leaders[0], batch_id, claims[leaders[0]], "succeeded"),
            _call(leaders[1], batch_id, claims[leaders[1]], "failed"),
            _no_call(leaders[2], batch_id, claims[leaders[2]], "failed"),
        ]
        results = racers.run("record", ledger_url, outcomes=outcomes)
        problems = _raised(results)
        finished = [f for r in results if not isinstance(r, Raised) for f in r[1]]
        with session_scope() as session:
            per_item = dict(
                session.execute(
                    select(Attempt.item_id, func.count())
                    .where(Attempt.batch_id == batch_id)
                    .group_by(Attempt.item_id)
                ).all()
            )
            states = Counter(
                session.scalars(select(Item.state).where(Item.batch_id == batch_id)).all()
            )
            done = session.scalar(select(Batch.done).where(Batch.id == batch_id))
        # Two leaders called once each, their four followers one cache-hit row each; the
        # leader that failed without a call passes no attempt on to its followers.
        if len(per_item) != 6 or set(per_item.values()) != {1}:
            problems.append(f"attempt rows per item {per_item}")
        if states != {"succeeded": 3, "failed": 6} or done != 9 or finished != [batch_id]:
            problems.append(f"states {dict(states)}, done {done}, finished {finished}")
        if problems:
            broken.append(f"round {round_no}: {problems}")
    _verdict(broken)


def _stage(ids: list[int], tier: str) -> None:
    """As a worker on a deferred tier leaves them: staged, in no provider batch yet."""
    with session_scope() as session:
        session.execute(
            update(Item)
            .where(Item.id.in_(ids))
            .values(state="deferred", tier=tier, claims=1, claimed_by="msg")
        )


def _provider_batches(batch_id: str) -> tuple[list[tuple[int, int]], Counter[str | None]]:
    """Each provider batch's (request_count, items it holds), and items per provider batch."""
    with session_scope() as session:
        held = Counter(
            session.scalars(select(Item.provider_batch_id).where(Item.batch_id == batch_id))
        )
        pbs = session.scalars(select(ProviderBatch).where(ProviderBatch.batch_id == batch_id))
        sizes = sorted((pb.request_count, held.get(pb.id, 0)) for pb in pbs)
    return sizes, held


def test_staged_items_are_formed_into_provider_batches_once(
    racers: Racers, ledger_url: str
) -> None:
    """Each staged item in exactly one provider batch, and no batch that holds fewer items
    than it counts (a phantom would be sent short or empty and counted as formed).

    On PostgreSQL two formers may split a group between them (SKIP LOCKED hands each the rows
    the other has not locked yet), so the sizes are not fixed here; one poll at a time makes
    them so (the poll race below)."""
    broken = []
    for round_no in range(ROUNDS):
        batch_id, ids = _register([f"stage {round_no} {n}" for n in range(25)])
        _stage(ids, "nightly")
        results = racers.run("form", ledger_url, batch_id=batch_id, tier="nightly", per_batch=10)
        problems = _raised(results)
        sizes, held = _provider_batches(batch_id)
        whole = all(counted == holds <= 10 for counted, holds in sizes)
        if not whole or sum(holds for _, holds in sizes) != 25 or None in held:
            problems.append(f"(counted, held) {sizes}; staged left {held.get(None, 0)}")
        if problems:
            broken.append(f"round {round_no}: {problems}")
    _verdict(broken)


def test_one_process_takes_a_ledger_lock(racers: Racers, ledger_url: str) -> None:
    broken = []
    for round_no in range(ROUNDS):
        results = racers.run("take_lock", ledger_url, name=f"race-{round_no}", lease_s=60)
        if _raised(results) or sorted(results) != [False] * (RACERS - 1) + [True]:
            broken.append(f"round {round_no}: {results}")
    _verdict(broken)


@pytest.mark.redis
def test_overlapping_deferred_polls_form_and_send_each_batch_once(
    racers: Racers, ledger_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Beat on two hosts, or a beat task beside `batchrouter deferred poll`: one poll at a
    time, so each provider batch is formed, uploaded and created once."""
    import httpx

    from providers.fake_server import running_fake_server
    from tests.helpers.deferred import fake_config, fake_stats, routing_file

    env = {"OPENAI_API_KEY": "sk-fake-deferred-key-0000"}
    broken = []
    with running_fake_server(fake_config(processing_s=600)) as url:
        config = routing_file(tmp_path, url, "openai", max_requests=10)
        for round_no in range(ROUNDS):
            httpx.post(f"{url}/_reset", timeout=5)
            batch_id, ids = _register(
                [f"poll {round_no} {n}" for n in range(25)], tier="nightly", config=config
            )
            _stage(ids, "nightly")
            results = racers.run("poll", ledger_url, env=env)
            problems = _raised(results)
            problems += [e for r in results if isinstance(r, dict) for e in r["errors"]]
            sizes, held = _provider_batches(batch_id)
            stats = fake_stats(url)
            sent = Counter(stats["batches"]["custom_ids"].values())
            uploaded, created = stats["batches"]["files_uploaded"], stats["batches"]["created"]
            if sizes != [(5, 5), (10, 10), (10, 10)] or None in held:
                problems.append(f"(counted, held) {sizes}; staged left {held.get(None, 0)}")
            if dict(sent) != {1: 25} or uploaded != 3 or created["openai"] != 3:
                problems.append(f"sent {dict(sent)}, uploaded {uploaded}, created {created}")
            if problems:
                broken.append(f"round {round_no}: {problems}")
            with session_scope() as session:  # out of the next rounds' way
                session.execute(update(ProviderBatch).values(state="ingested"))
    _verdict(broken)


def test_budgets_are_never_overspent(racers: Racers, ledger_url: str) -> None:
    """Reserve, then settle, from every process: a project allowing three calls gets three."""
    broken = []
    for round_no in range(ROUNDS):
        project = f"p{round_no}"
        batch_id, _ = _register(["budget"], project=project, budget_usd=1.0)
        with session_scope() as session:
            set_project_budget(session, project, 0.75)
        results = racers.run(
            "reserve", ledger_url, batch_id=batch_id, amount=0.25, tries=3, actual=0.25
        )
        problems = _raised(results)
        granted = sum(r for r in results if not isinstance(r, Raised))
        with session_scope() as session:
            batch = session.get(Batch, batch_id)
            limit = session.get(ProjectBudget, project)
            assert batch is not None and limit is not None
            figures = (batch.spent_usd, batch.reserved_usd, limit.spent_usd, limit.reserved_usd)
        if granted != 3 or figures != (0.75, 0.0, 0.75, 0.0):
            problems.append(f"granted {granted}; batch, project (spent, reserved) {figures}")
        if problems:
            broken.append(f"round {round_no}: {problems}")
    _verdict(broken)


def test_concurrent_cache_writes_keep_one_entry_per_key(racers: Racers, ledger_url: str) -> None:
    broken = []
    for round_no in range(ROUNDS):
        keys = [f"{round_no:04d}{n:060d}" for n in range(10)]
        entries = [
            CacheEntry(
                key=key,
                namespace="race",
                deployment="d",
                model="m",
                output=f"answer {key}",
                token_logprobs=None,
                cost_usd=0.01,
                source_attempt="b/1/1",
                ttl_s=3600,
            )  # fmt: skip
            for key in keys
        ]
        results = racers.run("store_cache", ledger_url, entries=entries, hits=keys)
        problems = _raised(results)
        with session_scope() as session:
            rows = session.execute(
                select(CachedResponse.key, CachedResponse.hits).where(CachedResponse.key.in_(keys))
            ).all()
        if sorted(key for key, _ in rows) != keys or {hits for _, hits in rows} != {RACERS}:
            problems.append(f"entries {len(rows)}, hits {sorted(h for _, h in rows)}")
        if problems:
            broken.append(f"round {round_no}: {problems}")
    _verdict(broken)


@pytest.mark.redis
def test_reconcilers_at_once_put_each_stranded_item_back_once(
    racers: Racers, ledger_url: str, redis_url: str
) -> None:
    """Stale claims requeued once, and queued items no message names republished once."""
    import redis

    from tests.conftest import SUITE_REDIS
    from worker.broker_state import item_ids_in_message

    client = redis.Redis.from_url(redis_url)
    broken = []
    for round_no in range(ROUNDS):
        SUITE_REDIS.clean()  # the suite's own Redis (or its claimed database): empty each round
        batch_id, ids = _register([f"reconcile {round_no} {n}" for n in range(30)])
        long_ago = utcnow() - timedelta(hours=1)
        with session_scope() as session:
            session.execute(  # every item of the earlier rounds is out of the way
                update(Item).where(Item.batch_id != batch_id).values(state="succeeded")
            )
            session.execute(update(Item).where(Item.id.in_(ids)).values(updated_at=long_ago))
            session.execute(  # a third were claimed by a worker that died
                update(Item)
                .where(Item.id.in_(ids[:10]))
                .values(state="running", claimed_at=long_ago, claimed_by="dead", claims=1)
            )
        results = racers.run("reconcile", ledger_url, queued_grace_s=30, running_timeout_s=60)
        problems = _raised(results)
        requeued = sum(r["requeued_stale"] for r in results if isinstance(r, dict))
        published = Counter(
            item_id
            for message in client.lrange("t0", 0, -1)
            for item_id in item_ids_in_message(message)
        )
        if requeued != 10 or sorted(published) != ids or set(published.values()) != {1}:
            twice = sorted(i for i, n in published.items() if n > 1)
            problems.append(f"requeued {requeued}, published {len(published)}, twice {twice}")
        if problems:
            broken.append(f"round {round_no}: {problems}")
    client.close()
    _verdict(broken)
