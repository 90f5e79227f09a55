"""The suite leaves alone the servers it did not start (README, `make test`).

A Redis started here plays the developer's server that BATCHROUTER_TEST_REDIS_URL names: the
suite's claim on it must leave every other database and key as it was. And no test or
benchmark may name a command that stops, restarts or flushes a server, except the helpers
that do so to the servers they started themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import ROOT, SUITE_REDIS, unavailable
from tests.helpers.servers import (
    CLAIM_KEY,
    RedisServer,
    ServerError,
    claim_empty_database,
    redis_server,
)

# What stops or empties a server, and the only files allowed to say it.
FORBIDDEN = re.compile(
    r"flushdb|flushall|shutdown nosave|redis-cli|pg_ctl|pg_ctlcluster|systemctl", re.I
)
ALLOWED = {"tests/helpers/servers.py", "tests/test_isolation.py"}


@pytest.fixture
def someone_elses_redis() -> Iterator[RedisServer]:
    try:
        with redis_server() as server:
            yield server
    except ServerError as exc:
        unavailable(f"could not start a Redis: {exc}")


@pytest.mark.redis
def test_a_claimed_database_is_an_empty_one_and_only_its_own_keys_are_deleted(
    someone_elses_redis: RedisServer,
) -> None:
    theirs = {0: {"queue": "a", "session:1": "b"}, 2: {"cache": "c"}}
    for db, keys in theirs.items():
        client = redis.Redis.from_url(someone_elses_redis.url(db))
        client.mset(keys)
        client.close()

    # The URL names db 0, which holds their keys: the run takes the first empty one instead.
    first = claim_empty_database(someone_elses_redis.url(0))
    second = claim_empty_database(someone_elses_redis.url(0))  # a second run, meanwhile
    assert first.url == someone_elses_redis.url(1)
    assert second.url == someone_elses_redis.url(3)

    first.client.set("tier0", "message")
    first.client.rpush("tier1", "a", "b")
    first.clean()
    assert first.client.keys() == [CLAIM_KEY.encode()]
    first.client.delete(CLAIM_KEY)  # a test may delete everything: the claim comes back
    first.clean()
    assert first.client.keys() == [CLAIM_KEY.encode()]

    first.release()
    second.release()
    for db in range(16):
        client = redis.Redis.from_url(someone_elses_redis.url(db))
        found = {key.decode(): client.get(key).decode() for key in client.scan_iter()}
        assert found == theirs.get(db, {}), db
        client.close()


@pytest.mark.redis
def test_the_suite_talks_to_the_redis_it_started(redis_url: str) -> None:
    """Without BATCHROUTER_TEST_REDIS_URL, the server behind the suite's URL is the
    redis-server process the suite started, not one that was already there."""
    if SUITE_REDIS._owned is None:
        pytest.skip("BATCHROUTER_TEST_REDIS_URL names the server: the suite claimed a database")
    process = SUITE_REDIS._owned.process
    assert process is not None and process.poll() is None
    client = redis.Redis.from_url(redis_url)
    assert client.info("server")["process_id"] == process.pid
    client.close()


def test_no_test_or_benchmark_stops_or_flushes_a_server_it_did_not_start() -> None:
    offenders = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ALLOWED:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if FORBIDDEN.search(line):
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
