"""Failover across hosts (issue 18): one worker host is cut off mid-batch, then reconnected.

Two hosts are network namespaces, each running a tier worker and beat, as docs/operations.md
("Several hosts") says to; Redis, PostgreSQL and the fake provider (which counts what it
bills) run in the root namespace on two test LANs: one for the ledger, one for Redis and the
provider. Host A is unplugged mid-batch, silently (its packets vanish; nothing resets its
connections), then plugged back in. Then:

- every item ends, and none is written twice (one row per call, each item's cost the sum of
  its rows);
- A's running items are taken over within the lease plus one lease check (plus slack below),
  long before the broker's visibility timeout (set beyond the test's length);
- every request the provider billed is a row of the ledger: A's calls that the takeover
  made redundant are there as `superseded`, at their real cost, once A is back; and the
  ledger's spend is not below the provider's invoice.

A is cut from the ledger's LAN two seconds before the other one. The ledger cannot know
whether a request sent in the last instants before a cut reached the provider (a call it
then records as a timeout at its estimated cost, "may be billed"). With the ledger gone
first, A starts no call in those two seconds (each call's intent must reach the ledger
before it is sent), so every request A sent reached the provider and the counts must match
exactly. An intent whose commit reached the ledger unheard is reported by A on its return
as `not_sent` (cost 0) and is not a billed request.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt, Item
from ledger.superseded import NOT_SENT, SUPERSEDED
from providers.fake_server import AnswerConfig, FakeServerConfig, LatencyConfig, running_fake_server
from tests.conftest import unavailable
from tests.helpers.faults import (
    assert_nothing_lost_or_charged_twice,
    invoice,
    many_tickets,
    summaries_routing_file,
    this_process_publishes_to,
    wait_until,
)
from tests.helpers.net import hosts_on_lans, namespaces_unavailable
from tests.helpers.servers import ServerError, postgres_cluster, redis_server
from tests.helpers.workers import running_beat, running_workers, stop_workers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(420)]
ITEMS = 600
LEASE_S, CHECK_S = 6, 2
# Beyond lease + check: beat's send, the wait of the lease check's message for a free task
# slot on B (its slots run chunks of ~1 s calls), and a loaded 2-core CI machine.
SLACK_S = 10
ENV = {
    "PARTITION_TEST_KEY": "sk-partition-test",
    "BATCHROUTER_CLAIM_LEASE_S": str(LEASE_S),
    "BATCHROUTER_LEASE_CHECK_INTERVAL": str(CHECK_S),
    # Neither the broker's redelivery nor the full reconcile may do the takeover here.
    "BATCHROUTER_VISIBILITY_TIMEOUT": "600",
    "BATCHROUTER_RECONCILE_INTERVAL": "600",
    "BATCHROUTER_CHUNK_SIZE": "10",
    "BATCHROUTER_REDIS_TIMEOUT_S": "3",
    "BATCHROUTER_DB_CONNECT_TIMEOUT_S": "2",
    "BATCHROUTER_DB_NETWORK_TIMEOUT_S": "4",
    "BATCHROUTER_DB_IDLE_IN_TRANSACTION_TIMEOUT_S": "3",
    "BATCHROUTER_DB_LOCK_TIMEOUT_S": "5",
    "BATCHROUTER_SOFT_SHUTDOWN_TIMEOUT": "10",
}


def held_by(pid: int, batch_id: str) -> set[int]:
    """Running items whose lease holder is worker process `pid` (holders are host:pid:nonce;
    the two namespaces share a hostname, not a pid)."""
    with session_scope(readonly=True) as session:
        return set(
            session.scalars(
                select(Item.id).where(
                    Item.batch_id == batch_id,
                    Item.state == "running",
                    Item.lease_holder.like(f"%:{pid}:%"),
                )
            )
        )


def claimed_by_nobody(item_ids: set[int]) -> set[int]:
    """Those of `item_ids` waiting on a queue (re-queued, not claimed again yet)."""
    with session_scope(readonly=True) as session:
        return set(
            session.scalars(select(Item.id).where(Item.id.in_(item_ids), Item.state == "queued"))
        )


def billed_rows(batch_id: str) -> list[Attempt]:
    """The ledger's calls that reached the provider: every row but those the ledger knows
    were never sent (a refused intent: cost 0)."""
    with session_scope(readonly=True) as session:
        rows = session.scalars(select(Attempt).where(Attempt.batch_id == batch_id))
        return [r for r in rows if not r.cache_hit and r.error_class != NOT_SENT]


def in_flight_rows(batch_id: str) -> int:
    with session_scope(readonly=True) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Attempt)
                .where(Attempt.batch_id == batch_id, Attempt.outcome == "in_flight")
            )
            or 0
        )


def test_a_cut_off_host_is_taken_over_in_seconds_and_its_paid_calls_kept(
    use_ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = namespaces_unavailable()
    if reason is not None:
        unavailable(f"the partition test needs network namespaces: {reason}")
    for name, value in ENV.items():  # submit (this process) chunks as the workers do
        monkeypatch.setenv(name, value)
    fake = FakeServerConfig(
        latency=LatencyConfig(distribution="lognormal", ms=1000, spread=0.3, max_ms=3000),
        answer=AnswerConfig(mode="summary", words=5),
        seed=11,
    )
    with ExitStack() as stack:
        net = stack.enter_context(hosts_on_lans(2, ("ledger", "app")))
        ledger_lan, app_lan = net.lans["ledger"], net.lans["app"]
        try:  # servers of the test's own, on the test LANs (never the machine's)
            redis = stack.enter_context(redis_server(app_lan.server_address))
            cluster = stack.enter_context(postgres_cluster(ledger_lan.server_address))
        except ServerError as exc:
            unavailable(f"could not start the partition test's own Redis and PostgreSQL: {exc}")
        base_url = stack.enter_context(running_fake_server(fake, host=app_lan.server_address))
        stack.enter_context(this_process_publishes_to(redis.url()))
        database_url = use_ledger(cluster.create_database("ledger"))
        timeouts = {"connect": 10.0, "read": 5.0}  # a connect that fails is no billed call
        config = summaries_routing_file(
            tmp_path / "rules.yaml", base_url, "PARTITION_TEST_KEY", timeouts
        )
        host_a, host_b = net.hosts
        workers = {}
        for label, host in (("a", host_a), ("b", host_b)):
            folder = tmp_path / label
            folder.mkdir()
            common = dict(database_url=database_url, broker_url=redis.url(), log_dir=folder)
            common["extra_env"] = ENV
            [workers[label]] = stack.enter_context(
                running_workers(
                    ["tier0"], config=config, concurrency=4, prefix=net.run(host), name=label,
                    **common,
                )
            )  # fmt: skip
            stack.enter_context(running_beat(prefix=net.run(host), **common))

        submitted = submit_batch(
            many_tickets(tmp_path / "tickets.jsonl", ITEMS), "summaries", config=config
        )
        batch_id = submitted.batch_id

        def a_mid_chunk() -> bool:
            return (
                batch_status(batch_id).done >= 100 and len(held_by(workers["a"].pid, batch_id)) > 0
            )

        wait_until(a_mid_chunk, 180, "100 items done and host A holding running items", 0.1)
        cut_at = time.monotonic()
        net.cut(host_a, "ledger")
        stranded = held_by(workers["a"].pid, batch_id)  # A can claim no more from here
        time.sleep(2.0)
        net.cut(host_a, "app")
        assert stranded, "the cut must land while A holds items"

        wait_until(
            lambda: not (held_by(workers["a"].pid, batch_id) & stranded),
            LEASE_S + CHECK_S + SLACK_S + 30,
            "host A's items to be taken over",
            0.2,
        )
        took_s = time.monotonic() - cut_at
        # A stays cut off until B has claimed them all again (they were re-queued behind B's
        # backlog): A's calls then cannot be used any more and must come back superseded.
        # (Back earlier, A's answers would land on rows no claim has adopted yet, and the
        # next claim would use them without calling again: tests/ledger/test_superseded.py.)
        wait_until(lambda: not claimed_by_nobody(stranded), 240, "B to claim A's items again")
        net.reconnect(host_a)
        status = wait_for_batch(batch_id, timeout=240)
        # Everything A will ever write: what it had in hand when it came back. Stop it (it
        # finishes its chunks first), and let it write them; nothing is left in flight.
        wait_until(lambda: in_flight_rows(batch_id) == 0, 90, "no call left in flight")
        stop_workers([workers["a"]], timeout=40)
        billed = httpx.get(f"{base_url}/_stats", timeout=5).json()
        for label in ("a", "b"):  # the logs of the run, for a failure's reader
            print(label, (tmp_path / label / "worker-tier0.log").read_text()[-3000:])
        print(f"takeover after {took_s:.1f} s (lease {LEASE_S} s, lease check every {CHECK_S} s)")
        assert status.succeeded == ITEMS
        assert_nothing_lost_or_charged_twice(batch_id, ITEMS)
        assert took_s <= LEASE_S + CHECK_S + SLACK_S, took_s

        rows = billed_rows(batch_id)
        superseded = [r for r in rows if r.outcome == SUPERSEDED]
        print(
            f"provider billed {billed['requests']} requests; ledger {len(rows)} calls, "
            f"{len(superseded)} superseded; stranded items {len(stranded)}"
        )
        assert billed["requests"] == len(rows)
        assert superseded, "A's calls made redundant by the takeover are kept as superseded"
        assert all(r.cost_usd > 0 for r in superseded)
        assert sum(r.cost_usd for r in rows) >= invoice(billed) * (1 - 1e-9)
