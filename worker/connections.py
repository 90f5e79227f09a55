"""Redis connections that notice a dead network (issue 18).

A Redis client with no socket timeout waits forever on a connection whose peer went silent (a
host cut off, a NAT or firewall that dropped the flow): the worker hangs with no error until
TCP gives up, minutes later. Every Redis client of a worker (the broker, the rate limiter, the
deployment statistics) gets these options: a command waits at most BATCHROUTER_REDIS_TIMEOUT_S,
an idle connection is probed by TCP keepalive, and redis-py checks a connection that sat idle
for that long before it reuses it.
"""

from __future__ import annotations

import socket
from typing import Any

from routing.settings import Settings


def redis_socket_options(settings: Settings) -> dict[str, Any]:
    timeout = settings.redis_timeout_s
    probe = max(1, int(timeout / 3))
    keepalive: dict[int, int] = {}
    for name, value in (("TCP_KEEPIDLE", probe), ("TCP_KEEPINTVL", probe), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):  # Linux; macOS names some differently
            keepalive[getattr(socket, name)] = value
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 5.0),
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive,
        "health_check_interval": max(1, int(timeout)),
    }


_PACKED: dict[type, type] = {}


def packed_by_hiredis(pool: Any) -> Any:
    """Give an asyncio connection pool's connections hiredis's C command packer.

    redis-py's sync connections pack commands with hiredis when it is installed; its asyncio
    ones always pack in Python, argument by argument: about 7 us for a statistics script's
    EVALSHA of 15 arguments against 1.4 us in C, twice per provider call. The bytes are the
    same (tests/worker/test_connections.py); without hiredis the pool is left as it is.
    """
    try:
        import hiredis
    except ImportError:  # pragma: no cover - a dependency; kept optional for redis-py's sake
        return pool
    base = pool.connection_class
    packed = _PACKED.get(base)
    if packed is None:
        from redis.exceptions import DataError

        def pack_command(self: Any, *args: Any) -> list[bytes]:
            # As redis-py's own packers: a command name of several words is split.
            if isinstance(args[0], str):
                args = (*args[0].encode().split(), *args[1:])
            elif b" " in args[0]:
                args = (*args[0].split(), *args[1:])
            try:
                return [hiredis.pack_command(args)]
            except TypeError as exc:  # a bool, None...: redis-py's error for it
                raise DataError(str(exc)) from exc

        packed = _PACKED[base] = type(
            f"Hiredis{base.__name__}", (base,), {"pack_command": pack_command}
        )
    pool.connection_class = packed
    return pool
