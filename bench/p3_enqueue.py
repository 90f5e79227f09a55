"""P3: enqueue 100k items from JSONL into the ledger (PostgreSQL) and the broker (Redis),
over a plain `apply_async` loop's rate measured in the same run (bar 5x, goal 10x).

Ours is `submit_batch` end to end: read and validate the file, insert the rows, publish chunks
of ids pipelined. The baseline publishes one ids-only message per item with `apply_async`, as
a producer without bulk enqueue would; its rate is taken over `baseline_n` messages.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import common
from bench.common import Result, flush_redis, postgres_database, write_items

BAR, GOAL = 5.0, 10.0


def plain_apply_async_rate(count: int) -> float:
    from worker.tasks import attempt

    flush_redis()
    began = time.perf_counter()
    for i in range(count):
        attempt.apply_async(kwargs={"item_ids": [i], "tier": "tier0"}, queue="tier0")
    rate = count / (time.perf_counter() - began)
    flush_redis()
    return rate


def run(quick: bool = False) -> Result:
    from producers.submit import submit_batch
    from routing.settings import get_settings

    items = 5_000 if quick else 100_000
    baseline_n = 1_000 if quick else 10_000
    assert os.environ.get("BATCHROUTER_BROKER_URL") == common.REDIS_URL
    with tempfile.TemporaryDirectory() as tmp, postgres_database("batchrouter_p3") as url:
        source = write_items(Path(tmp) / "items.jsonl", items)
        os.environ["BATCHROUTER_DATABASE_URL"] = url
        get_settings.cache_clear()
        baseline = plain_apply_async_rate(baseline_n)
        stages: dict[str, float] = {}
        began = time.perf_counter()
        last = [began]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if done >= total:
                stages[stage] = now - last[0]
                last[0] = now

        config = Path(__file__).resolve().parents[1] / "examples" / "routing.yaml"
        submitted = submit_batch(source, "ticket_classification", config=config, progress=progress)
        elapsed = time.perf_counter() - began
        import redis

        queued = redis.Redis.from_url(common.REDIS_URL).llen(submitted.entry_tier)
        flush_redis()
        os.environ.pop("BATCHROUTER_DATABASE_URL", None)
        get_settings.cache_clear()
    assert submitted.items == items and queued == submitted.messages, (submitted, queued)
    rate = items / elapsed
    split = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in stages.items())
    return Result(
        "P3",
        f"enqueue {items:,} items (JSONL -> PostgreSQL + Redis), {submitted.messages:,} messages",
        rate,
        "items/s",
        baseline,
        "msgs/s (plain apply_async loop)",
        f">= {BAR:.0f}x",
        rate / baseline >= BAR,
        [f"{elapsed:.2f} s in all: {split}"],
    )
