"""Faults 2 and 3: restart Redis (its queues gone) or PostgreSQL in the middle of a batch.

Redis here keeps nothing on disk, so a restart loses every queued message: the reconciler must
put the waiting items back. A PostgreSQL restart breaks every open connection: workers must
retry their writes. In both cases every item must end, none lost, none charged twice.

The servers restarted are the tests' own (tests/helpers/servers.py): a redis-server for the
Redis test, an initdb cluster for the PostgreSQL test, each on a free port in a temporary
folder. The machine's servers, which others use, are never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from sqlalchemy.exc import DBAPIError

from batchrouter.api import batch_status, submit_batch
from tests.conftest import EXAMPLES, dispose_engines, unavailable
from tests.helpers.faults import (
    assert_nothing_lost_or_charged_twice,
    many_tickets,
    reconciler_running,
    this_process_publishes_to,
    wait_until,
)
from tests.helpers.servers import (
    PostgresCluster,
    RedisServer,
    ServerError,
    postgres_cluster,
    redis_server,
)
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(600)]
LADDER = ["tier0", "tier1", "tier2"]
SLOW = {"BATCHROUTER_SIM_TIME_SCALE": "1.0", "BATCHROUTER_VISIBILITY_TIMEOUT": "30"}


# These tests stop servers, so they stop only servers they started (never the machine's).
@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with ExitStack() as stack:
        try:
            server = stack.enter_context(redis_server())
        except ServerError as exc:
            unavailable(f"could not start a Redis of the test's own: {exc}")
        yield server


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresCluster]:
    """One cluster for the module (initdb takes seconds); each test takes a database of it."""
    with ExitStack() as stack:
        try:
            cluster = stack.enter_context(postgres_cluster())
        except ServerError as exc:
            unavailable(f"could not start a PostgreSQL cluster of the test's own: {exc}")
        yield cluster


def _done(batch_id: str) -> int:
    try:
        return batch_status(batch_id).done
    except DBAPIError:  # the database may be restarting
        return -1


def _run_batch_with_fault(postgres_url, redis_url, use_ledger, tmp_path: Path, fault) -> list:  # type: ignore[no-untyped-def]
    use_ledger(postgres_url)
    source = many_tickets(tmp_path / "tickets.jsonl", 2000)
    common = dict(database_url=postgres_url, broker_url=redis_url, extra_env=SLOW, concurrency=2)
    with (
        running_workers(LADDER, log_dir=tmp_path, **common),
        reconciler_running() as repairs,
    ):
        submitted = submit_batch(source, "ticket_classification", config=EXAMPLES / "routing.yaml")
        wait_until(lambda: _done(submitted.batch_id) >= 300, 120, "300 items done")
        fault()
        assert _done(submitted.batch_id) < 2000, "the fault must land in the middle of the batch"
        wait_until(lambda: _done(submitted.batch_id) >= 2000, 400, "every item to end", poll=1)
    assert_nothing_lost_or_charged_twice(submitted.batch_id, 2000)
    return repairs


def test_redis_restart_loses_the_queues_and_the_reconciler_recovers(
    postgres_url: str, own_redis: RedisServer, use_ledger, tmp_path: Path
) -> None:
    def restart_redis() -> None:
        client = redis.Redis.from_url(own_redis.url())
        client.set("before-the-restart", 1)
        assert client.llen("tier0") > 0  # type: ignore[operator]
        own_redis.restart()  # nothing on disk: every key, every queue, is gone
        # (not `llen("tier0") == 0`: the reconciler may already have republished)
        assert client.get("before-the-restart") is None
        client.close()

    with this_process_publishes_to(own_redis.url()) as broker:
        repairs = _run_batch_with_fault(postgres_url, broker, use_ledger, tmp_path, restart_redis)
    republished = sum(sum(r.republished.values()) for r in repairs if not isinstance(r, Exception))
    assert republished > 0


def test_postgres_restart_mid_batch(
    own_postgres: PostgresCluster, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    database = own_postgres.create_database(f"ledger_{tmp_path.name}")
    try:
        _run_batch_with_fault(database, redis_url, use_ledger, tmp_path, own_postgres.restart)
    finally:
        dispose_engines(database)
