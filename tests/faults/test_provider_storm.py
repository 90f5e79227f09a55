"""Fault 4: a provider storm on one deployment, through real workers and the fake server.

30% of the calls to the flaky deployment fail (429 with Retry-After, 500, 529, hangs past the
read timeout, malformed JSON, empty 200s, mixed). Items must retry, fall back or escalate, none
may be stuck, and failed calls must be priced as the provider bills them. The run uses a known
fake API key, which must appear nowhere: not in logs, ledger rows, stored errors or reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from batchrouter.api import batch_report, submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt, Batch, Item
from ledger.money import dumps
from providers.fake_server import (
    AnswerConfig,
    ErrorsConfig,
    FakeServerConfig,
    LatencyConfig,
    running_fake_server,
)
from tests.conftest import EXAMPLES
from tests.helpers.faults import assert_nothing_lost_or_charged_twice
from tests.helpers.net import free_port
from tests.helpers.workers import running_flower, running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]
KEY = "sk-test-Fj3kQ9zVbW7pL2mN8xR4tY6u"  # fake, but shaped like a real key
LABELS = [
    "billing",
    "refund_request",
    "shipping_delay",
    "account_access",
    "password_reset",
    "cancel_subscription",
    "technical_bug",
    "feature_request",
    "change_address",
    "complaint",
]
STORM = ErrorsConfig(
    rate_limit=0.05,
    server_error=0.05,
    overloaded=0.05,
    hang=0.05,
    malformed_json=0.05,
    empty_content=0.05,
    retry_after_s=1.0,
    hang_s=60,
)


def routing_file(path: Path, flaky: str, steady: str) -> Path:
    def deployment(url: str, model: str, price_in: float, price_out: float) -> dict:
        return {
            "provider": "openai",
            "model": model,
            "api_base": f"{url}/v1",
            "api_key_env": "STORM_TEST_KEY",
            "prices": {"input": price_in, "output": price_out},
            "max_output_tokens": 16,
            "timeouts": {"read": 2.0},
        }

    config = {
        "deployments": {
            "flaky": deployment(flaky, "gpt-4o-mini", 0.15, 0.60),
            "steady": deployment(steady, "gpt-4.1-mini", 0.40, 1.60),
            "premium": deployment(steady, "gpt-4o", 2.50, 10.0),
        },
        "tiers": [
            # The circuit out of reach: this storm is about retries, fallbacks and pricing.
            # Its errors come back at once and its answers after the latency, so the first
            # burst of a batch is 5 transient failures in a row often enough to open the
            # circuit, which then (rightly) refuses the retries this test looks for. Circuits
            # have their own test: test_provider_outage.py.
            {"name": "tier0", "deployments": ["flaky", "steady"], "circuit_after_failures": 1000},
            {"name": "tier1", "deployments": ["premium"]},
        ],
        "task_types": {
            "ticket_classification": {
                "ladder": ["tier0", "tier1"],
                "prompt": "Labels: {labels}\nTicket: {text}",
                "checks": [{"kind": "non_empty"}, {"kind": "label", "labels": LABELS}],
                "max_attempts": 8,
                "transient_retries": 2,
            }
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_provider_storm_ends_every_item_priced_right_and_leaks_no_key(
    sqlite_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(sqlite_url)
    answer = AnswerConfig(mode="label", labels=LABELS + ["I am not sure"])
    quiet = FakeServerConfig(latency=LatencyConfig(ms=20), answer=answer, api_key=KEY, seed=1)
    stormy = quiet.model_copy(update={"errors": STORM, "seed": 2})
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:150]))

    with (
        running_fake_server(stormy) as flaky,
        running_fake_server(quiet) as steady,
        running_flower(redis_url, free_port(), tmp_path / "flower.out") as flower,
    ):
        config = routing_file(tmp_path / "rules.yaml", flaky, steady)
        with running_workers(
            ["tier0", "tier1"],
            database_url=sqlite_url,
            broker_url=redis_url,
            log_dir=tmp_path,
            config=config,
            extra_env={"STORM_TEST_KEY": KEY},
        ):
            submitted = submit_batch(source, "ticket_classification", config=config)
            status = wait_for_batch(submitted.batch_id, timeout=300)
            flower_seen = _flower_dump(flower)

    assert status.done == 150
    assert_nothing_lost_or_charged_twice(submitted.batch_id, 150)
    with session_scope() as session:
        attempts = list(
            session.scalars(select(Attempt).where(Attempt.batch_id == submitted.batch_id))
        )
        items = list(session.scalars(select(Item).where(Item.batch_id == submitted.batch_id)))
        batch = session.get(Batch, submitted.batch_id)
        assert batch is not None
        stored = batch.config_yaml

    errors = [a for a in attempts if a.error_class]
    kinds = {a.error_class for a in errors}
    assert {"rate_limited", "transient", "bad_response"} <= kinds, kinds
    for attempt in errors:
        message = attempt.error_message or ""
        if any(f"HTTP {code}" in message for code in (429, 500, 529)):
            assert attempt.cost_usd == 0, message  # error responses are not billed
        if attempt.usage_estimated:
            assert attempt.cost_usd > 0, message  # a hang or a broken 200 may be: upper bound
    assert any(a.usage_estimated for a in errors), "hangs and broken bodies are priced"
    # Items retried on the flaky deployment, fell back to the steady one, or escalated.
    by_item: dict[int, list[Attempt]] = {}
    for attempt in attempts:
        by_item.setdefault(attempt.item_id, []).append(attempt)
    assert any(
        [a.deployment for a in rows][:2] == ["flaky", "flaky"] for rows in by_item.values()
    ), "transient errors were retried on the same deployment"
    assert any(a.deployment == "steady" and a.outcome == "passed" for a in attempts), (
        "a deployment that kept failing fell back to the next one"
    )
    assert any(a.tier == "tier1" for a in attempts), "check failures escalated"
    assert all(item.state in ("succeeded", "failed") for item in items)

    # The key is nowhere: ledger rows, stored routing file, report, worker logs.
    report = dumps(batch_report(submitted.batch_id).as_dict())  # exact money
    texts = [stored, report] + [p.read_text(errors="replace") for p in tmp_path.glob("*.log")]
    for row in attempts:
        texts += [row.error_message or "", row.output or "", json.dumps(row.prices)]
    for item in items:
        texts += [item.error or "", item.output or ""]
    texts.append(flower_seen)
    assert not [t for t in texts if KEY in t]
    first_text = json.loads(source.read_text().splitlines()[0])["text"]
    assert first_text[:40] not in flower_seen  # Flower saw ids, never texts
    assert "STORM_TEST_KEY" in stored  # the file names the variable, never the value


def _flower_dump(base: str) -> str:
    """Everything Flower's API says about tasks and workers, once it has seen the tasks."""
    auth = ("ops", "s3cret")
    deadline = time.monotonic() + 30
    tasks = {}
    while time.monotonic() < deadline and not tasks:
        tasks = httpx.get(f"{base}/api/tasks", params={"limit": 10000}, auth=auth).json()
        time.sleep(0.5)
    assert tasks, "Flower saw the tasks"
    workers = httpx.get(f"{base}/api/workers", auth=auth).json()
    return json.dumps(tasks) + json.dumps(workers)
