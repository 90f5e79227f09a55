"""Faults 2 and 3: restart Redis (its queues gone) or PostgreSQL in the middle of a batch.

Redis here keeps nothing on disk, so a restart loses every queued message: the reconciler must
put the waiting items back. A PostgreSQL restart breaks every open connection: workers must
retry their writes. In both cases every item must end, none lost, none charged twice.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy.exc import DBAPIError

from batchrouter.api import batch_status, submit_batch
from tests.conftest import EXAMPLES
from tests.helpers.faults import (
    assert_nothing_lost_or_charged_twice,
    many_tickets,
    reconciler_running,
    wait_until,
)
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(600)]
LADDER = ["tier0", "tier1", "tier2"]
SLOW = {"BATCHROUTER_SIM_TIME_SCALE": "1.0", "BATCHROUTER_VISIBILITY_TIMEOUT": "30"}

# How this machine starts its services (the env notes of the machine kind); override if yours
# differ. Only these two tests stop a service, and they start it again whatever happens.
REDIS_START = os.environ.get(
    "BATCHROUTER_TEST_REDIS_START",
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
)
REDIS_STOP = os.environ.get(
    "BATCHROUTER_TEST_REDIS_STOP", "redis-cli -h 127.0.0.1 -p 6379 shutdown nosave"
)


def _pg_restart_command() -> str:
    if "BATCHROUTER_TEST_PG_RESTART" in os.environ:
        return os.environ["BATCHROUTER_TEST_PG_RESTART"]
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return f"pg_ctlcluster --skip-systemctl-redirect {version} main restart"


def _done(batch_id: str) -> int:
    try:
        return batch_status(batch_id).done
    except DBAPIError:  # the database may be restarting
        return -1


def _run_batch_with_fault(postgres_url, redis_url, use_ledger, tmp_path: Path, fault) -> None:  # type: ignore[no-untyped-def]
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
    postgres_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    def restart_redis() -> None:
        subprocess.run(shlex.split(REDIS_STOP), check=False, capture_output=True)
        time.sleep(1)
        subprocess.run(shlex.split(REDIS_START), check=True)
        wait_until(lambda: _redis_up(redis_url), 30, "Redis to come back")
        assert redis.Redis.from_url(redis_url).llen("tier0") == 0  # the queues really are gone

    repairs = _run_batch_with_fault(postgres_url, redis_url, use_ledger, tmp_path, restart_redis)
    republished = sum(sum(r.republished.values()) for r in repairs if not isinstance(r, Exception))
    assert republished > 0


def test_postgres_restart_mid_batch(
    postgres_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    def restart_postgres() -> None:
        subprocess.run(shlex.split(_pg_restart_command()), check=True, capture_output=True)

    _run_batch_with_fault(postgres_url, redis_url, use_ledger, tmp_path, restart_postgres)


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False
