"""Flower against the real Redis broker while a batch runs: tier queues, lengths, workers, and
task counts that match the ledger (checked through Flower's HTTP API)."""

from __future__ import annotations

import ast
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt
from routing.settings import get_settings
from tests.conftest import EXAMPLES, ROOT
from tests.helpers.net import free_port, poll
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]
LADDER = ["tier0", "tier1", "tier2"]
AUTH = ("ops", "s3cret")


def test_flower_shows_tier_queues_workers_and_the_ledgers_task_counts(
    use_ledger, sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    url = use_ledger(sqlite_url)
    port = free_port()
    env = {
        **os.environ,
        "BATCHROUTER_BROKER_URL": redis_url,
        "BATCHROUTER_DATABASE_URL": url,
        # Flower 2 serves its API only behind auth (or with FLOWER_UNAUTHENTICATED_API=true).
        "FLOWER_BASIC_AUTH": ":".join(AUTH),
    }
    log = (tmp_path / "flower.log").open("wb")
    flower = subprocess.Popen(
        [sys.executable, "-m", "batchrouter", "flower", "--port", str(port)]
        + ["--address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=AUTH, timeout=10)
    try:
        poll(lambda: api.get("/healthcheck").status_code == 200, 60, "Flower to start")
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=10).status_code == 401
        with running_workers(
            LADDER,
            database_url=url,
            broker_url=redis_url,
            log_dir=tmp_path,
            extra_env={"BATCHROUTER_SIM_TIME_SCALE": "0.2"},  # slow enough to see a queue
        ):
            # Every tier's worker is online in Flower (heartbeat events) and answers inspect.
            def workers_online() -> dict | None:
                online = api.get("/api/workers", params={"status": "true"}).json()
                tiers = {name.split("-")[0] for name, up in online.items() if up}
                return online if tiers >= set(LADDER) else None

            poll(workers_online, 60, "three online workers in Flower")

            def every_tiers_queues() -> dict | None:
                # Under load an inspect round may miss a busy worker: ask again until all answer.
                workers = api.get("/api/workers", params={"refresh": "true"}).json()
                consumed = {
                    name.split("-")[0]: {q["name"] for q in info.get("active_queues") or []}
                    for name, info in workers.items()
                }
                return consumed if all(consumed.get(tier) for tier in LADDER) else None

            consumed = poll(every_tiers_queues, 60, "every worker's queues")
            for tier in LADDER:
                assert tier in consumed[tier], consumed

            submitted = submit_batch(
                EXAMPLES / "tickets.jsonl", "ticket_classification", name="flower"
            )
            seen: dict[str, int] = {}
            deadline = time.monotonic() + 120
            while not batch_status(submitted.batch_id).finished and time.monotonic() < deadline:
                for queue in api.get("/api/queues/length").json()["active_queues"]:
                    seen[queue["name"]] = max(seen.get(queue["name"], 0), queue["messages"])
            wait_for_batch(submitted.batch_id, timeout=1)
            assert set(LADDER) <= set(seen), seen
            assert seen["tier0"] > 0, "the entry queue held waiting messages during the run"

            tasks = poll(
                lambda: _finished_tasks(api, submitted.messages), 60, "Flower to see every task"
            )
    finally:
        api.close()
        flower.send_signal(signal.SIGTERM)
        try:
            flower.wait(15)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait()
        log.close()

    # The ledger's view: which items were attempted on which tier.
    with session_scope() as session:
        rows = session.execute(
            select(Attempt.tier, Attempt.item_id).where(Attempt.batch_id == submitted.batch_id)
        ).all()
    ledger_items: dict[str, set[int]] = defaultdict(set)
    for tier, item_id in rows:
        ledger_items[tier].add(item_id)

    flower_items: dict[str, list[int]] = defaultdict(list)
    messages: dict[str, list[list[int]]] = defaultdict(list)
    for task in tasks:
        assert task["state"] == "SUCCESS", task
        kwargs = ast.literal_eval(task["kwargs"])  # ids and the tier only: never item text
        assert set(kwargs) == {"item_ids", "tier"}
        # The result is counts only: no model, cost, tokens or latency of any call.
        result = ast.literal_eval(task["result"])
        assert set(result) == {
            "tier",
            "received",
            "claimed",
            "recorded",
            "by_state",
            "escalated_to",
            "waiting",
        }
        flower_items[kwargs["tier"]] += kwargs["item_ids"]
        messages[kwargs["tier"]].append(kwargs["item_ids"])
    for tier in LADDER:
        assert sorted(flower_items[tier]) == sorted(ledger_items[tier]), tier
    # Messages per tier: the entry tier's from the submit; each later tier's from the chunks
    # the tier below escalated (ledger: items of that message attempted on the next tier).
    chunk = get_settings().chunk_size
    assert len(messages["tier0"]) == submitted.messages
    for lower, upper in zip(LADDER, LADDER[1:], strict=False):
        expected = sum(
            math.ceil(len(set(ids) & ledger_items[upper]) / chunk) for ids in messages[lower]
        )
        assert len(messages[upper]) == expected, upper


def _finished_tasks(api: httpx.Client, entry_messages: int) -> list[dict] | None:
    """Flower's attempt tasks, once none is still running and the entry ones are all there."""
    tasks = api.get("/api/tasks", params={"taskname": "batchrouter.attempt", "limit": 10000}).json()
    values = list(tasks.values())
    entry = [t for t in values if "'tier': 'tier0'" in (t.get("kwargs") or "")]
    if len(entry) < entry_messages or any(t["state"] != "SUCCESS" for t in values):
        return None
    return values
