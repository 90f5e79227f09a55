"""Shared pieces of the fault tests: bigger inputs, a reconciler loop, ledger invariants."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from ledger.db import session_scope
from ledger.models import Attempt, Item
from tests.conftest import EXAMPLES


def many_tickets(path: Path, count: int) -> Path:
    """`count` tickets made from the examples, each with an id of its own."""
    source = [json.loads(line) for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()]
    with path.open("w") as out:
        for n in range(count):
            ticket = dict(source[n % len(source)])
            ticket["id"] = f"{ticket['id']}-{n // len(source)}"
            out.write(json.dumps(ticket) + "\n")
    return path


@contextmanager
def reconciler_running(every_s: float = 1.0, running_timeout_s: float = 5.0) -> Iterator[list]:
    """What beat does in production, faster: reconcile every `every_s` seconds."""
    from worker.reconcile import reconcile

    stop = threading.Event()
    results: list = []

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                results.append(reconcile(running_timeout_s, queued_grace_s=2.0))
            except Exception as exc:  # the broker or database may be down on purpose
                results.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(10)


@contextmanager
def this_process_publishes_to(broker_url: str) -> Iterator[str]:
    """Point this process's Celery app (what `submit_batch` and the reconciler publish with)
    and its broker settings at another Redis, such as a fault test's own server; put the
    suite's back afterwards."""
    import worker.app
    from routing.settings import get_settings

    before_env, before_app = os.environ.get("BATCHROUTER_BROKER_URL"), worker.app.app
    os.environ["BATCHROUTER_BROKER_URL"] = broker_url
    get_settings.cache_clear()
    app = worker.app.make_celery(get_settings())
    worker.app.app = app
    try:
        yield broker_url
    finally:
        worker.app.app = before_app
        before_app.set_current()
        app.close()
        if before_env is None:
            os.environ.pop("BATCHROUTER_BROKER_URL", None)
        else:
            os.environ["BATCHROUTER_BROKER_URL"] = before_env
        get_settings.cache_clear()


PRICE_IN, PRICE_OUT = 0.15, 0.60  # USD per 1M tokens: the fake provider's one model


def summaries_routing_file(
    path: Path, base_url: str, key_env: str, timeouts: dict[str, float]
) -> Path:
    """One tier, one deployment on the fake provider at `base_url`, a non-empty check, no
    cache: every item makes calls the provider counts (its bill: `invoice`)."""
    config = {
        "deployments": {
            "mini": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "api_base": f"{base_url}/v1",
                "api_key_env": key_env,
                "prices": {"input": PRICE_IN, "output": PRICE_OUT},
                "max_output_tokens": 16,
                "timeouts": timeouts,
            }
        },
        "tiers": [{"name": "tier0", "deployments": ["mini"]}],
        "task_types": {
            "summaries": {
                "ladder": ["tier0"],
                "prompt": "Summarize: {text}",
                "checks": [{"kind": "non_empty"}],
                "cache": False,
            }
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def invoice(stats: dict) -> float:
    """What the fake provider billed, from its /_stats, in USD."""
    return (stats["prompt_tokens"] * PRICE_IN + stats["output_tokens"] * PRICE_OUT) / 1e6


def assert_nothing_lost_or_charged_twice(batch_id: str, expected_items: int) -> dict[str, int]:
    """Every item ended; every call is one row; each item's cost is the sum of its rows."""
    with session_scope() as session:
        items = list(session.scalars(select(Item).where(Item.batch_id == batch_id)))
        attempts = list(session.scalars(select(Attempt).where(Attempt.batch_id == batch_id)))
    assert len(items) == expected_items
    states: dict[str, int] = defaultdict(int)
    by_item: dict[int, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_item[attempt.item_id].append(attempt)
    for item in items:
        states[item.state] += 1
        assert item.state in ("succeeded", "failed"), (item.external_id, item.state, item.error)
        rows = sorted(by_item[item.id], key=lambda a: a.attempt_no)
        assert [a.attempt_no for a in rows] == list(range(1, len(rows) + 1))
        assert item.attempts == len(rows)
        assert item.cost_usd == pytest.approx(sum(a.cost_usd for a in rows), rel=1e-9, abs=1e-12)
    return dict(states)


def wait_until(predicate, timeout: float, what: str, poll: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
