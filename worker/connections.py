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
