"""Every call the provider bills is in the ledger, even when its worker is SIGKILLed.

The fake provider counts what it answered (requests and tokens). A worker with 100 calls open
is killed mid-batch, a second worker and the reconciler finish the batch, and then:
- the ledger has a row for every request the provider received, and its spend is at least the
  provider's bill (a call cut off by the kill is kept at its estimated cost);
- calls made again after the kill are at most the calls in flight at the kill, plus those that
  ended within the journal's flush window before it (about half a second): a finished call is
  not paid for twice because its chunk had not finished yet.
Latencies have a long tail, so a chunk's fast answers wait for its slowest call: with one ledger
write per chunk, all of those were lost at a kill and called again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt
from providers.fake_server import (
    AnswerConfig,
    FakeServerConfig,
    LatencyConfig,
    running_fake_server,
)
from tests.helpers.faults import (
    PRICE_IN,
    PRICE_OUT,
    assert_nothing_lost_or_charged_twice,
    many_tickets,
    reconciler_running,
    summaries_routing_file,
    wait_until,
)
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]
ITEMS = 1200
# Median 300 ms, a long tail (p99 about 5 s): a chunk of 25 waits for its slowest call.
TAILED = LatencyConfig(distribution="lognormal", ms=300, spread=1.2, max_ms=8000)


def routing_file(path: Path, base_url: str) -> Path:
    return summaries_routing_file(path, base_url, "KILL_TEST_KEY", {"read": 20.0})


def provider_stats(base_url: str) -> dict:
    return httpx.get(f"{base_url}/_stats", timeout=5).json()


def test_sigkill_loses_no_billed_call_and_repeats_only_calls_in_flight(
    sqlite_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(sqlite_url)
    source = many_tickets(tmp_path / "tickets.jsonl", ITEMS)
    fake = FakeServerConfig(latency=TAILED, answer=AnswerConfig(mode="summary", words=5), seed=7)
    common = dict(
        database_url=sqlite_url,
        broker_url=redis_url,
        concurrency=4,
        extra_env={"KILL_TEST_KEY": "sk-kill-test", "BATCHROUTER_VISIBILITY_TIMEOUT": "30"},
    )
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with running_fake_server(fake) as base_url:
        config = routing_file(tmp_path / "rules.yaml", base_url)
        with running_workers(["tier0"], log_dir=tmp_path / "first", config=config, **common) as [
            worker
        ]:
            submitted = submit_batch(source, "summaries", config=config)
            wait_until(lambda: batch_status(submitted.batch_id).done >= 300, 180, "300 done")
            before = provider_stats(base_url)
            time.sleep(1.0)
            at_kill = provider_stats(base_url)
            worker.send_signal(signal.SIGKILL)  # no warm shutdown, no ack, no cleanup
            worker.wait()
        in_flight_at_kill = at_kill["in_flight"]
        # Answered in the last second before the kill: the most the journal may not have
        # written yet (it writes every half second).
        ended_last_second = (at_kill["requests"] - at_kill["in_flight"]) - (
            before["requests"] - before["in_flight"]
        )
        assert batch_status(submitted.batch_id).done < ITEMS, "the kill must land mid-batch"
        with (
            # Claims older than any call (8 s at most) are stale: only the dead worker's.
            reconciler_running(running_timeout_s=20.0),
            running_workers(["tier0"], log_dir=tmp_path / "second", config=config, **common),
        ):
            status = wait_for_batch(submitted.batch_id, timeout=300)
        billed = provider_stats(base_url)

    assert status.succeeded == ITEMS
    assert_nothing_lost_or_charged_twice(submitted.batch_id, ITEMS)
    with session_scope() as session:
        rows = list(session.scalars(select(Attempt).where(Attempt.batch_id == submitted.batch_id)))
    calls = [row for row in rows if not row.cache_hit]
    lost = [row for row in calls if row.error_class == "lost_in_flight"]

    # Every request the provider received has its row, and the ledger's spend is not below
    # the provider's bill.
    assert billed["requests"] <= len(calls)
    invoice = (billed["prompt_tokens"] * PRICE_IN + billed["output_tokens"] * PRICE_OUT) / 1e6
    spend = sum(row.cost_usd for row in rows)
    assert spend >= invoice * (1 - 1e-9), (spend, invoice)
    # A call cut off by the kill is visible, at its estimate, flagged as such.
    assert all(row.usage_estimated and row.cost_usd > 0 for row in lost)
    assert not [row for row in rows if row.outcome == "in_flight"]

    # Each item needed one call; the extra ones were made again after the kill.
    repeated = billed["requests"] - ITEMS
    assert repeated <= len(lost)
    assert repeated <= in_flight_at_kill + ended_last_second, (
        repeated,
        in_flight_at_kill,
        ended_last_second,
    )


def test_a_killed_workers_budget_holds_end_with_their_lease(
    postgres_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    """A worker killed between reserve and settle leaves holds on the batch's budget; they
    stop counting when their lease ends, the reconciler releases them as spent (the calls may
    have been billed), and the batch's spend never falls below the provider's bill."""
    from worker.reconcile import reconcile

    use_ledger(postgres_url)
    source = many_tickets(tmp_path / "tickets.jsonl", 200)
    fake = FakeServerConfig(latency=LatencyConfig(ms=4000), answer=AnswerConfig(mode="summary"))
    # Lease = the rate limiter's wait (0 here) + every timeout of a call (8 s) + margin (1 s).
    env = {
        "KILL_TEST_KEY": "sk-kill-test",
        "BATCHROUTER_RATELIMIT_MAX_RESERVE_S": "0",
        "BATCHROUTER_RESERVATION_MARGIN_S": "1",
    }
    common = dict(database_url=postgres_url, broker_url=redis_url, concurrency=2, extra_env=env)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with running_fake_server(fake) as base_url:
        config = routing_file(tmp_path / "rules.yaml", base_url)
        rules = yaml.safe_load(config.read_text())
        rules["deployments"]["mini"]["timeouts"] = {"connect": 1, "read": 5, "write": 1, "pool": 1}
        config.write_text(yaml.safe_dump(rules))
        with running_workers(["tier0"], log_dir=tmp_path / "first", config=config, **common) as [
            worker
        ]:
            submitted = submit_batch(source, "summaries", config=config, budget_usd=10.0)
            wait_until(lambda: provider_stats(base_url)["in_flight"] >= 20, 60, "calls in flight")
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        held = batch_status(submitted.batch_id).reserved_usd
        assert held > 0, "the dead worker's calls hold part of the budget"
        time.sleep(10)  # past every lease
        assert batch_status(submitted.batch_id).reserved_usd == 0.0  # status: live holds only
        repaired = reconcile(running_timeout_s=5.0)
        assert repaired.reservations_released >= 1
        with running_workers(["tier0"], log_dir=tmp_path / "second", config=config, **common):
            status = wait_for_batch(submitted.batch_id, timeout=240)
        billed = provider_stats(base_url)

    assert status.succeeded == 200 and status.reserved_usd == 0.0
    with session_scope() as session:
        rows = list(session.scalars(select(Attempt).where(Attempt.batch_id == submitted.batch_id)))
        from ledger.models import Batch

        batch = session.get(Batch, submitted.batch_id)
        assert batch is not None
        assert batch.reserved_usd == 0
        spent = batch.spent_usd
    invoice = (billed["prompt_tokens"] * PRICE_IN + billed["output_tokens"] * PRICE_OUT) / 1e6
    assert spent >= invoice * (1 - 1e-9), (spent, invoice)
    # The budget's figure and the ledger's rows agree up to calls that ended in the last flush
    # window before the kill (settled at their cost, kept in the ledger at their estimate).
    assert spent <= sum(row.cost_usd for row in rows)  # exact decimals: no tolerance
