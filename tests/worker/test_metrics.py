"""Prometheus metrics scraped over HTTP from running worker processes after a real batch."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import distinct, func, select

from batchrouter.api import submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt
from tests.conftest import EXAMPLES
from tests.helpers.workers import workers_with_metrics
from worker.metrics import PRIORITY_SEP, queue_depths

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]
LADDER = ["tier0", "tier1", "tier2"]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: list[dict], name: str, **labels: str) -> float:
    return sum(
        value
        for scraped in samples
        for (sample, sample_labels), value in scraped.items()
        if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def test_queue_depth_sums_the_priority_sub_lists(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.lpush("ops-q", "a", "b")
    client.lpush(f"ops-q{PRIORITY_SEP}3", "c")
    client.lpush(f"ops-q{PRIORITY_SEP}9", "d", "e", "f")
    assert queue_depths(client, ["ops-q", "empty-q"]) == {"ops-q": 6, "empty-q": 0}


def test_metrics_scraped_from_running_workers(
    use_ledger, sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    url = use_ledger(sqlite_url)
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:150]))
    with workers_with_metrics(
        LADDER, database_url=url, broker_url=redis_url, log_dir=tmp_path
    ) as urls:
        submitted = submit_batch(source, "ticket_classification", config=EXAMPLES / "routing.yaml")
        status = wait_for_batch(submitted.batch_id, timeout=120)
        samples = [scrape(metrics_url) for metrics_url in urls.values()]

    with session_scope() as session:
        attempts, cost = session.execute(
            select(func.count(), func.sum(Attempt.cost_usd)).where(
                Attempt.batch_id == submitted.batch_id
            )
        ).one()
        reached = dict(
            session.execute(
                select(Attempt.tier, func.count(distinct(Attempt.item_id)))
                .where(Attempt.batch_id == submitted.batch_id)
                .group_by(Attempt.tier)
            ).all()
        )
    assert total(samples, "batchrouter_attempts_total") == attempts
    assert total(samples, "batchrouter_cost_usd_total") == pytest.approx(float(cost), rel=1e-6)
    assert total(samples, "batchrouter_items_total", state="succeeded") == status.succeeded
    assert total(samples, "batchrouter_items_total", state="failed") == status.failed
    # sim never errors, so every escalated item is attempted on the next tier
    assert total(samples, "batchrouter_escalations_total", from_tier="tier0") == reached["tier1"]
    assert total(samples, "batchrouter_escalations_total", to_tier="tier2") == reached.get(
        "tier2", 0
    )
    assert total(samples, "batchrouter_tokens_total", kind="input") > 0
    assert total(samples, "batchrouter_call_latency_seconds_count", tier="tier0") == total(
        samples, "batchrouter_attempts_total", tier="tier0"
    )
    assert total(samples, "batchrouter_provider_errors_total") == 0
    assert total(samples, "batchrouter_chunks_total", result="ok") >= submitted.messages
    for tier in LADDER:  # every tier queue has a depth on every worker, drained by now
        assert all(("batchrouter_queue_depth", (("queue", tier),)) in s for s in samples)
    assert total(samples, "batchrouter_queue_depth") == 0
