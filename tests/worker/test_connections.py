"""worker/connections.py: hiredis's C packer on asyncio Redis pools sends what redis-py's own
Python packer sends, refuses what it refuses, and works against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from worker.connections import packed_by_hiredis

ARGUMENTS = [
    ("EVALSHA", "a" * 40, 2, "bstats:d", "bstats:d:inflight", "tok", 0.0123, "ok", 0.2, 30.0),
    ("SET", b"\xff\x00raw", "é ü", -0.0, float("inf"), 1e-7, 10**20, 1 / 3),
    ("CONFIG GET", "maxmemory"),  # a command name of two words is split, as redis-py does
    (b"CLIENT SETNAME", "x"),
]


@pytest.mark.parametrize("args", ARGUMENTS)
def test_the_bytes_are_redis_pys_own(args: tuple) -> None:
    pool = packed_by_hiredis(aioredis.ConnectionPool())
    packed = pool.connection_class()
    assert type(packed) is not Connection and isinstance(packed, Connection)
    assert b"".join(packed.pack_command(*args)) == b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_what_redis_py_refuses_is_refused_the_same_way(bad: object) -> None:
    packed = packed_by_hiredis(aioredis.ConnectionPool()).connection_class()
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        packed.pack_command("SET", "k", bad)


def test_the_pools_own_connection_kind_is_kept() -> None:
    pool = packed_by_hiredis(aioredis.ConnectionPool.from_url("unix:///tmp/redis.sock"))
    assert issubclass(pool.connection_class, UnixDomainSocketConnection)


@pytest.mark.redis
def test_scripts_and_pipelines_run_through_it(redis_url: str) -> None:
    async def main() -> tuple[list, object]:
        pool = packed_by_hiredis(aioredis.BlockingConnectionPool.from_url(redis_url))
        client = aioredis.Redis(connection_pool=pool)
        try:
            script = client.register_script("return {KEYS[1], ARGV[1], ARGV[2]}")
            pipe = client.pipeline(transaction=False)
            pipe.set("test:packed:k", "é")
            pipe.get("test:packed:k")
            pipe.delete("test:packed:k")
            replies = list(await pipe.execute())
            return replies, await script(keys=["test:packed:k"], args=[0.25, "x y"])
        finally:
            await client.aclose()

    replies, scripted = asyncio.run(main())
    assert replies == [True, "é".encode(), 1]
    assert scripted == [b"test:packed:k", b"0.25", b"x y"]
