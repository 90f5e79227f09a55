"""Deferred tiers end to end: real workers stage items, the poller sends them through the fake
server's OpenAI Batch API or Anthropic Message Batches, results come back by custom_id, are
checked, priced at batch prices, and failures climb to the next tier."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from batchrouter.api import batch_report, submit_batch
from ledger.db import session_scope
from ledger.models import Attempt, Item, ProviderBatch
from providers.fake_server import running_fake_server
from routing.price_table import lookup_prices
from tests.helpers.deferred import (
    LABELS,
    MODELS,
    drive,
    fake_config,
    fake_stats,
    routing_file,
    submissions_per_item_attempt,
    tickets,
    wait_staged,
)
from tests.helpers.workers import running_workers
from worker.deferred.poller import poll_once

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-deferred-key-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-deferred-key-0000")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, use_ledger) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return use_ledger(url)


def _rows(batch_id: str) -> tuple[list[Item], list[Attempt]]:
    with session_scope() as session:
        items = list(session.scalars(select(Item).where(Item.batch_id == batch_id)))
        attempts = list(
            session.scalars(
                select(Attempt).where(Attempt.batch_id == batch_id).order_by(Attempt.id)
            )
        )
        session.expunge_all()
    return items, attempts


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_deferred_tier_runs_through_the_batch_api_and_escalates_failures(
    provider: str, ledger_url: str, redis_url: str, tmp_path: Path
) -> None:
    with running_fake_server(fake_config()) as url:
        config = routing_file(tmp_path, url, provider)
        source = tickets(tmp_path, 60)
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(source, "ticket_classification", config=config)
            status = drive(submitted.batch_id)
        stats = fake_stats(url)

    assert status.succeeded == 60, status.by_state
    items, attempts = _rows(submitted.batch_id)
    deferred = [a for a in attempts if a.provider_batch_id is not None]
    immediate = [a for a in attempts if a.provider_batch_id is None]
    # Every item went through the batch API once; the `unsure` answers failed the label check
    # and were escalated to the immediate premium tier.
    assert sorted(a.item_id for a in deferred) == sorted(i.id for i in items)
    assert {a.tier for a in deferred} == {"nightly"}
    escalated = [a for a in deferred if a.outcome == "check_failed"]
    assert escalated, "the fake cheap model answers `unsure` for some prompts"
    assert sorted(a.item_id for a in immediate) == sorted(a.item_id for a in escalated)
    assert {a.tier for a in immediate} == {"premium"}
    assert all(i.output in LABELS for i in items)

    # Batch prices: half the table's immediate prices, and the saving recorded per attempt.
    cheap = MODELS[provider][0]
    full, half = lookup_prices(cheap), lookup_prices(cheap, batch=True)
    assert half.input == pytest.approx(full.input / 2)
    for attempt in deferred:
        assert attempt.input_tokens > 0 and attempt.output_tokens > 0
        assert float(attempt.saved_usd) == pytest.approx(float(attempt.cost_usd), rel=1e-6)
        assert attempt.prices["input"] == pytest.approx(half.input)
        assert not attempt.cache_hit

    # Nothing was sent twice: one submission per (item, attempt number).
    counts = submissions_per_item_attempt(stats)
    assert set(counts.values()) == {1}
    assert len(counts) == 60
    with session_scope() as session:
        pbs = list(session.scalars(select(ProviderBatch)))
    assert {pb.state for pb in pbs} == {"ingested"}
    assert sum(pb.request_count for pb in pbs) == 60

    report = batch_report(submitted.batch_id)
    assert report.cost_usd == sum(a.cost_usd for a in attempts)


def test_an_expired_provider_batch_keeps_its_results_and_requeues_the_rest(
    sqlite_url: str, use_ledger, redis_url: str, tmp_path: Path
) -> None:
    ledger_url = use_ledger(sqlite_url)
    with running_fake_server(fake_config(processing_s=4)) as url:
        config = routing_file(tmp_path, url, "openai")
        source = tickets(tmp_path, 20)
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(source, "ticket_classification", config=config)
            first = _first_submitted(submitted.batch_id)
            # The provider gives up on it (its 24 h window, here forced) with half processed.
            expired = httpx.post(f"{url}/_batches/{first}/expire", params={"processed": 0.5})
            assert expired.status_code == 200, expired.text
            poll_once(submit_grace_s=0)  # ends and ingests it: 10 settled, 10 back to the queue
            items, attempts = _rows(submitted.batch_id)
            kept = {a.item_id for a in attempts if a.provider_batch_id is not None}
            assert len(kept) == 10
            status = drive(submitted.batch_id, timeout=120)
        stats = fake_stats(url)

    assert status.succeeded == 20, status.by_state
    items, attempts = _rows(submitted.batch_id)
    deferred = [a for a in attempts if a.provider_batch_id is not None]
    # Partial results were kept: the 10 answered items were not sent again.
    assert sorted({a.item_id for a in deferred}) == sorted(i.id for i in items)
    assert len(deferred) == 20
    # The answered half was sent once; only the unprocessed half was sent again (same
    # attempt number: an expired request is not billed and records no attempt).
    counts = submissions_per_item_attempt(stats)
    assert {item for item, _no in counts} == {i.id for i in items}
    assert {item for (item, _no), n in counts.items() if n == 1} == kept
    assert {n for (item, _no), n in counts.items() if item not in kept} == {2}


def _first_submitted(batch_id: str, timeout: float = 60) -> str:
    """Poll until the first provider batch is submitted; return the provider's id."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll_once(force=True, submit_grace_s=0)
        with session_scope() as session:
            found = session.scalars(
                select(ProviderBatch.provider_id).where(
                    ProviderBatch.batch_id == batch_id, ProviderBatch.provider_id.is_not(None)
                )
            ).first()
            staged = session.scalar(
                select(Item.id).where(Item.batch_id == batch_id, Item.state != "deferred")
            )
        if found and staged is None:
            return found
        time.sleep(0.2)
    raise AssertionError("no provider batch was submitted")


def test_paused_batches_stay_staged_and_cancel_drops_staged_items(
    sqlite_url: str, use_ledger, redis_url: str, tmp_path: Path
) -> None:
    from batchrouter.api import batch_status
    from ledger.lifecycle import cancel_batch, pause_batch

    ledger_url = use_ledger(sqlite_url)
    with running_fake_server(fake_config()) as url:
        config = routing_file(tmp_path, url, "openai", collect_s=3600)
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(tickets(tmp_path, 12), "ticket_classification", config=config)
            wait_staged(submitted.batch_id, 12)
            # Within collect_s nothing is sent; a paused batch is not sent even when forced.
            assert poll_once(submit_grace_s=0).formed == 0
            with session_scope() as session:
                pause_batch(session, submitted.batch_id)
            assert poll_once(force=True, submit_grace_s=0).formed == 0
            with session_scope() as session:
                assert cancel_batch(session, submitted.batch_id) == 12
        assert fake_stats(url)["batches"]["custom_ids"] == {}
    status = batch_status(submitted.batch_id)
    assert status.finished and status.by_state == {"cancelled": 12}


def test_escalation_may_climb_to_another_deferred_tier(
    sqlite_url: str, use_ledger, redis_url: str, tmp_path: Path
) -> None:
    ledger_url = use_ledger(sqlite_url)
    with running_fake_server(fake_config()) as url:
        config = routing_file(tmp_path, url, "anthropic", premium_deferred=True)
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(
                tickets(tmp_path, 30), "ticket_classification", config=config, budget_usd=5.0
            )
            status = drive(submitted.batch_id)
    assert status.succeeded == 30, status.by_state
    # Deferred calls are charged to the batch's budget when their results are ingested.
    assert status.spent_usd > 0 and status.reserved_usd == 0
    _items, attempts = _rows(submitted.batch_id)
    premium = [a for a in attempts if a.tier == "premium"]
    assert premium, "some cheap answers failed the label check"
    assert status.spent_usd == sum(a.cost_usd for a in attempts)
    # The second rung went through its own provider batch, at batch prices, too.
    assert all(a.provider_batch_id is not None for a in attempts)
    with session_scope() as session:
        tiers = {pb.tier for pb in session.scalars(select(ProviderBatch))}
    assert tiers == {"nightly", "premium"}


def test_a_provider_batch_cancelled_at_the_provider_sends_its_items_back(
    sqlite_url: str, use_ledger, redis_url: str, tmp_path: Path
) -> None:
    ledger_url = use_ledger(sqlite_url)
    with running_fake_server(fake_config(processing_s=8)) as url:
        config = routing_file(tmp_path, url, "openai")
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(tickets(tmp_path, 10), "ticket_classification", config=config)
            first = _first_submitted(submitted.batch_id)
            # Someone cancels it in the provider's console before it ran.
            cancelled = httpx.post(
                f"{url}/v1/batches/{first}/cancel",
                headers={"authorization": "Bearer sk-fake-deferred-key-0000"},
            )
            assert cancelled.status_code == 200, cancelled.text
            status = drive(submitted.batch_id, timeout=120)
        stats = fake_stats(url)
    assert status.succeeded == 10, status.by_state
    with session_scope() as session:
        pbs = {pb.provider_id: pb for pb in session.scalars(select(ProviderBatch))}
    assert pbs[first].provider_status == "cancelled" and pbs[first].state == "ingested"
    assert len(pbs) == 2, "the items went back to their queue and into a new provider batch"
    counts = submissions_per_item_attempt(stats)
    assert len(counts) == 10 and set(counts.values()) == {2}


def test_beat_task_polls_and_provider_batches_respect_the_request_limit(
    sqlite_url: str, use_ledger, redis_url: str, tmp_path: Path
) -> None:
    """The beat task (sent to the control queue, run by a worker) does the polling; 25 staged
    items with max_requests 10 become provider batches of 10, 10 and 5."""
    import time

    from batchrouter.api import batch_status
    from worker.app import app
    from worker.queues import CONTROL_QUEUE

    ledger_url = use_ledger(sqlite_url)
    with running_fake_server(fake_config(processing_s=0.2)) as url:
        config = routing_file(tmp_path, url, "openai", max_requests=10)
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
            extra_env={"BATCHROUTER_DEFERRED_SUBMIT_GRACE_S": "0"},
        ):  # fmt: skip
            submitted = submit_batch(tickets(tmp_path, 25), "ticket_classification", config=config)
            wait_staged(submitted.batch_id, 25)
            deadline = time.monotonic() + 120
            while not batch_status(submitted.batch_id).finished:
                assert time.monotonic() < deadline, batch_status(submitted.batch_id).by_state
                app.send_task("batchrouter.deferred_poll", kwargs={"force": True},
                              queue=CONTROL_QUEUE)  # fmt: skip
                time.sleep(0.5)
    assert batch_status(submitted.batch_id).succeeded == 25
    with session_scope() as session:
        sizes = sorted(
            pb.request_count
            for pb in session.scalars(select(ProviderBatch).where(ProviderBatch.tier == "nightly"))
        )
    assert sizes == [5, 10, 10]


def test_the_deferred_poll_command_runs_a_batch_to_the_end(
    sqlite_url: str, use_ledger, redis_url: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    ledger_url = use_ledger(sqlite_url)
    with running_fake_server(fake_config()) as url:
        config = routing_file(tmp_path, url, "anthropic")
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(tickets(tmp_path, 15), "ticket_classification", config=config)
            wait_staged(submitted.batch_id, 15)
            polled = subprocess.run(
                [sys.executable, "-m", "batchrouter", "deferred", "poll", "--now", "--wait",
                 "--every", "0.5", "--grace", "0"],
                env={**os.environ, "BATCHROUTER_DATABASE_URL": ledger_url},
                capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert polled.returncode == 0, polled.stderr
            from batchrouter.api import batch_status

            status = batch_status(submitted.batch_id)  # --wait returned: the batch is over
        shown = subprocess.run(
            [sys.executable, "-m", "batchrouter", "deferred", "status"],
            env={**os.environ, "BATCHROUTER_DATABASE_URL": ledger_url},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert status.succeeded == 15
    assert "ingested" in polled.stderr and "0 open, 0 items staged, 0 batches" in polled.stderr
    assert shown.returncode == 0 and "ingested" in shown.stdout
    assert "sk-ant-fake-deferred-key" not in polled.stderr + shown.stdout
