"""Issue 14: a provider outage makes items wait, not fail.

Two real worker processes (one per tier) call a fake OpenAI-compatible server on loopback. In
the middle of the batch the server is stopped for 30 s, then started again on the same port.
The batch must finish by itself (no `retry` by hand) with every item succeeded, and the outage
must not have spent attempts: while the circuits are open no call is made, so each item's
failed calls are the few it made before its deployment's circuit opened, plus the probes.

What an operator sees during the outage is checked too: items `queued` (none failed) whose
error names the tier, the open circuit and the next try, and a WARNING line in the worker's log
when the circuit opened and when it closed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.models import Attempt, Item
from providers.fake_server import AnswerConfig, FakeServerConfig, LatencyConfig, running_fake_server
from tests.helpers.faults import assert_nothing_lost_or_charged_twice, many_tickets, wait_until
from tests.helpers.net import free_port
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]
ITEMS = 600
OUTAGE_S = 30
IN_FLIGHT = 6  # calls in flight per worker process (BATCHROUTER_MAX_IN_FLIGHT)
RETRIES = 2  # transient_retries: a round makes at most 3 calls on the one deployment
LABELS = ["billing", "refund_request", "shipping_delay", "account_access", "other"]


def routing_file(path: Path, small_url: str, large_url: str) -> Path:
    def deployment(model: str, base_url: str) -> dict:
        return {
            "provider": "openai",
            "model": model,
            "api_base": f"{base_url}/v1",
            "api_key_env": "OUTAGE_TEST_KEY",
            "prices": {"input": 0.15, "output": 0.60},
            "max_output_tokens": 16,
            "timeouts": {"connect": 2.0, "read": 5.0},
        }

    circuit = {"circuit_after_failures": 5, "circuit_open_s": 2, "circuit_open_max_s": 8}
    config = {
        "deployments": {
            "small": deployment("gpt-4o-mini", small_url),
            "large": deployment("gpt-4o", large_url),
        },
        "tiers": [
            {"name": "tier0", "deployments": ["small"], **circuit},
            {"name": "tier1", "deployments": ["large"], **circuit},
        ],
        "task_types": {
            "tickets": {
                "ladder": ["tier0", "tier1"],
                "prompt": "Labels: {labels}\nTicket: {text}",
                "checks": [{"kind": "label", "labels": LABELS}],
                "transient_retries": RETRIES,
                "cache": False,
                "on_outage": "wait",
                "outage_wait_s": 300,
            }
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_30_s_provider_outage_makes_items_wait_and_the_batch_finishes(
    postgres_url: str, redis_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(postgres_url)
    source = many_tickets(tmp_path / "tickets.jsonl", ITEMS)
    # Some of the small model's answers are off the label list, so items escalate and both
    # tiers are busy; the large model (its own server) always answers a label.
    answer = AnswerConfig(mode="label", labels=LABELS + ["I am not sure"])
    small = FakeServerConfig(latency=LatencyConfig(ms=150), answer=answer, seed=3)
    large = FakeServerConfig(
        latency=LatencyConfig(ms=150), answer=AnswerConfig(mode="fixed", text="billing")
    )
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    config = routing_file(tmp_path / "rules.yaml", *urls)
    env = {"OUTAGE_TEST_KEY": "sk-outage-test", "BATCHROUTER_MAX_IN_FLIGHT": str(IN_FLIGHT)}
    with running_workers(
        ["tier0", "tier1"],
        database_url=postgres_url,
        broker_url=redis_url,
        log_dir=tmp_path,
        config=config,
        concurrency=2,
        extra_env=env,
    ):
        with providers_up(small, large, ports):
            batch = submit_batch(source, "tickets", config=config).batch_id
            wait_until(lambda: batch_status(batch).done >= ITEMS // 5, 120, "a fifth done")
        # Both providers are down: leaving their `with` closed their sockets, cut every call.
        down_at = time.monotonic()
        time.sleep(OUTAGE_S / 2)
        during = waiting_items(batch)
        time.sleep(max(OUTAGE_S - (time.monotonic() - down_at), 0))
        before_restart = batch_status(batch)
        failed_by_outage = waiting_items(batch)["failed"]
        with providers_up(small, large, ports):  # the same addresses: nothing reconfigured
            status = wait_for_batch(batch, timeout=180)

    # The outage landed mid-batch, items waited through it, and none failed.
    assert before_restart.done < ITEMS
    assert failed_by_outage == during["failed"] == [], failed_by_outage
    assert during["waiting"] > 0, during
    assert any("circuit open for small since" in r for r in during["reasons"]), during
    # The batch finished by itself: every item succeeded, nothing lost or charged twice.
    assert status.succeeded == ITEMS
    assert_nothing_lost_or_charged_twice(batch, ITEMS)

    # No attempts piled up. Before a deployment's circuit opened, at most its failure threshold
    # plus the calls in flight at that moment failed (5 + 6); while open, one probe call per
    # wait of at least 2 s, so at most OUTAGE_S / 2 failed probes; two deployments.
    with session_scope() as session:
        rows = session.execute(
            select(Attempt.item_id, Attempt.error_class, Attempt.cost_usd).where(
                Attempt.batch_id == batch
            )
        ).all()
    failed = [row for row in rows if row.error_class is not None]
    assert failed, "the outage cut calls"
    assert {row.error_class for row in failed} == {"transient"}
    assert all(row.cost_usd == 0 for row in failed)  # refused connections are not billed
    bound = 2 * (5 + IN_FLIGHT + OUTAGE_S // 2)
    assert len(failed) <= bound, (len(failed), bound)
    per_item = Counter(row.item_id for row in failed)
    # An item stops calling once its deployment's circuit is open: the round in which the
    # outage hit it made at most RETRIES + 1 calls; later only probes, one at a time per
    # deployment. Those unbilled calls were given back to its attempt cap (max_attempts is 6,
    # the default), which is why an item that probed several times still succeeded.
    assert max(per_item.values()) <= RETRIES + 1 + OUTAGE_S // 2, per_item.most_common(3)

    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    assert "deployment small: circuit opened after 5 transient failures" in logs
    assert "deployment small: probe answered; circuit closed" in logs


@contextmanager
def providers_up(
    small: FakeServerConfig, large: FakeServerConfig, ports: tuple[int, int]
) -> Iterator[None]:
    with running_fake_server(small, port=ports[0]), running_fake_server(large, port=ports[1]):
        yield


def waiting_items(batch: str) -> dict:
    """What an operator finds in the ledger during the outage: items queued with the reason."""
    with session_scope() as session:
        items = session.execute(select(Item.state, Item.error).where(Item.batch_id == batch)).all()
    waiting = [item.error for item in items if item.state == "queued" and item.error]
    reasons = [error for error in waiting if error.startswith("tier tier0 down")]
    return {
        "failed": [item.error for item in items if item.state == "failed"],
        "waiting": len(reasons),
        "reasons": sorted(set(reasons)),
    }
