"""Broker messages carry item ids and a tier name, never the item's text.

Every command sent to Redis during a whole batch (submit, escalations, acks) is watched with
MONITOR; each published message is decoded and checked.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from pathlib import Path

import pytest
import redis

from batchrouter.api import submit_batch, wait_for_batch
from routing.settings import get_settings
from tests.conftest import EXAMPLES
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]
MARKER = "Zebra-Quartz-7731"  # appears in every item text and nowhere else


def test_no_item_text_reaches_redis(
    sqlite_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(sqlite_url)
    source = tmp_path / "tickets.jsonl"
    with source.open("w") as out:
        for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()[:200]:
            ticket = json.loads(line)
            ticket["text"] = f"{ticket['text']} (customer ref {MARKER})"
            out.write(json.dumps(ticket) + "\n")

    seen: list[str] = []
    stop = threading.Event()
    client = redis.Redis.from_url(redis_url)

    our_db = client.connection_pool.connection_kwargs.get("db", 0)

    def watch() -> None:
        with client.monitor() as monitor:  # MONITOR is server-wide: keep our database only
            for command in monitor.listen():
                if int(command.get("db", -1)) == our_db:
                    seen.append(command["command"])
                if stop.is_set():
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with running_workers(
        ["tier0", "tier1", "tier2"], database_url=sqlite_url, broker_url=redis_url, log_dir=tmp_path
    ):
        submitted = submit_batch(source, "ticket_classification", config=EXAMPLES / "routing.yaml")
        wait_for_batch(submitted.batch_id, timeout=120)
    stop.set()
    client.ping()  # one more command so the watcher wakes up and ends
    watcher.join(10)

    published = [c for c in seen if c.startswith("LPUSH")]
    # Submit's messages (one per chunk) and at least one escalation, all seen by the watcher.
    chunks = math.ceil(200 / get_settings().chunk_size)
    assert sum(c.startswith("LPUSH tier0 ") for c in published) >= chunks, "submit not watched"
    assert any(not c.startswith("LPUSH tier0 ") for c in published), "no escalation watched"
    assert not any(MARKER in command for command in seen)
    for command in published:
        payload = command.split(" ", 2)[2].strip().strip('"').encode().decode("unicode_escape")
        message = json.loads(payload)
        body = json.loads(base64.b64decode(message["body"]))
        args, kwargs, _embed = body
        assert message["headers"]["task"] == "batchrouter.attempt"
        assert args == [] and set(kwargs) == {"item_ids", "tier"}
        assert all(isinstance(i, int) for i in kwargs["item_ids"])
        assert MARKER not in base64.b64decode(message["body"]).decode()
