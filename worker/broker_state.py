"""Which item ids have a live message in the broker (waiting in a queue or held unacked).

The reconciler re-publishes only queued items that no message names, so a long queue is not
doubled every time it runs. Supported for Redis and the embedded filesystem broker; for other
brokers `live_item_ids` returns None and the reconciler falls back to a waiting-time rule.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from routing.settings import Settings

# kombu's Redis transport splits a queue into sub-lists per priority step ("tier0\x06\x163").
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def item_ids_in_message(raw: bytes | str) -> list[int]:
    """The item ids a kombu message (as stored by the transport) carries; [] if not ours."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # the Redis `unacked` hash: [message, exchange, key]
            message = message[0]
        if message.get("headers", {}).get("task") != "batchrouter.attempt":
            return []
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        return [int(i) for i in kwargs.get("item_ids", [])]
    except (ValueError, KeyError, TypeError, IndexError):
        return []


def live_item_ids(
    settings: Settings, tiers: Iterable[str], unacked_max_age_s: float
) -> set[int] | None:
    """Ids named by waiting messages, or by unacked ones delivered less than
    `unacked_max_age_s` ago (an older delivery belongs to a worker presumed dead)."""
    url = settings.resolved_broker_url()
    if url.startswith(("redis://", "rediss://")):
        return _redis_live(url, tiers, unacked_max_age_s)
    if url.startswith("filesystem"):
        return _folder_live(settings.broker_folder())
    return None


def _redis_live(url: str, tiers: Iterable[str], unacked_max_age_s: float) -> set[int]:
    import redis

    from routing.settings import get_settings
    from worker.connections import redis_socket_options

    # Timeouts: a reconciler on a host cut off from Redis fails (and is retried by beat)
    # instead of hanging.
    client = redis.Redis.from_url(url, **redis_socket_options(get_settings()))
    try:
        raw: list[bytes] = []
        for tier in tiers:
            for suffix in REDIS_PRIORITY_SUFFIXES:
                raw.extend(cast(list[bytes], client.lrange(tier + suffix, 0, -1)))
        # kombu keeps delivered-but-unacked messages in the `unacked` hash, indexed by
        # delivery time in the `unacked_index` sorted set.
        recent = cast(
            list[bytes],
            client.zrangebyscore("unacked_index", time.time() - unacked_max_age_s, "+inf"),
        )
        if recent:
            raw.extend(m for m in cast(list, client.hmget("unacked", recent)) if m is not None)
    finally:
        client.close()
    return {item_id for message in raw for item_id in item_ids_in_message(message)}


def _folder_live(folder: Path) -> set[int]:
    live: set[int] = set()
    for path in folder.glob("*.msg"):
        try:
            live.update(item_ids_in_message(path.read_bytes()))
        except OSError:  # taken by a worker meanwhile
            continue
    return live
