"""A deferred poll run by a worker shows in its Prometheus metrics: provider-batch steps, the
calls it ingested (cost, tokens, outcomes) and the staged/open gauges; the task itself returns
counts only (Flower shows what a task returns)."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from prometheus_client import REGISTRY

from worker import metrics, tasks
from worker.deferred import poller
from worker.deferred.poller import PollSummary
from worker.pipeline import ChunkSummary


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_poll_task_result_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    call = {
        "tier": "nightly-m", "deployment": "mini-batch", "model": "gpt-4o-mini",
        "outcome": "passed", "error_class": None, "cost_usd": 0.25, "latency_ms": 0.0,
        "input_tokens": 100, "output_tokens": 20,
    }  # fmt: skip
    summary = PollSummary(
        formed=2, submitted=2, ended=1, ingested=1, staged=7, open=3,
        calls=[call, {**call, "outcome": "error", "error_class": "transient", "cost_usd": 0.0}],
        items_by_tier={"nightly-m": {"succeeded": 1, "queued": 1}},
    )  # fmt: skip
    before = {
        "formed": _value("batchrouter_provider_batches_total", {"event": "formed"}),
        "cost": _value("batchrouter_cost_usd_total", {"tier": "nightly-m", "model": "gpt-4o-mini"}),
        "ok": _value("batchrouter_items_total", {"tier": "nightly-m", "state": "succeeded"}),
        "errors": _value(
            "batchrouter_provider_errors_total",
            {"tier": "nightly-m", "deployment": "mini-batch", "error_class": "transient"},
        ),
    }
    summary.errors.append("pb1 submitted: openai HTTP 500: upstream said something")
    monkeypatch.setattr(poller, "poll_once", lambda force=False: summary)
    returned = tasks.deferred_poll_task()
    assert returned == {
        "formed": 2, "submitted": 2, "ended": 1, "ingested": 1, "settled": {}, "sent_back": 0,
        "open": 3, "staged": 7, "unfinished": 0, "errors": 1,
    }  # fmt: skip
    labels = {"tier": "nightly-m", "model": "gpt-4o-mini"}
    assert _value("batchrouter_provider_batches_total", {"event": "formed"}) == before["formed"] + 2
    assert _value("batchrouter_cost_usd_total", labels) == before["cost"] + 0.25
    assert (
        _value("batchrouter_items_total", {"tier": "nightly-m", "state": "succeeded"})
        == before["ok"] + 1
    )
    assert (
        _value(
            "batchrouter_provider_errors_total",
            {"tier": "nightly-m", "deployment": "mini-batch", "error_class": "transient"},
        )
        == before["errors"] + 1
    )
    assert _value("batchrouter_deferred_staged_items") == 7
    assert _value("batchrouter_provider_batches_open") == 3


def test_an_attempt_task_counts_its_calls_and_returns_counts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flower showed each call's cost, tokens, latency and model in the task's result, though
    the docs said no payload reaches Flower (issue 13, section 3)."""
    call = {
        "tier": "t-flower", "deployment": "d-flower", "model": "m-flower", "outcome": "passed",
        "error_class": None, "cost_usd": 0.125, "latency_ms": 250.0, "input_tokens": 40,
        "output_tokens": 2,
    }  # fmt: skip
    summary = ChunkSummary(
        tier="t-flower", received=3, claimed=2, recorded=2, by_state={"succeeded": 2},
        escalated_to={}, calls=[call, call],
    )  # fmt: skip
    monkeypatch.setattr(tasks, "process_chunk", lambda ids, tier, token: summary)
    cost = {"tier": "t-flower", "model": "m-flower"}
    before = _value("batchrouter_cost_usd_total", cost)
    returned = tasks.attempt([1, 2, 3], "t-flower")
    assert returned == {
        "tier": "t-flower", "received": 3, "claimed": 2, "recorded": 2,
        "by_state": {"succeeded": 2}, "escalated_to": {}, "waiting": 0,
    }  # fmt: skip
    assert "m-flower" not in repr(returned) and "0.125" not in repr(returned)
    assert _value("batchrouter_cost_usd_total", cost) == before + 0.25
    assert _value("batchrouter_items_total", {"tier": "t-flower", "state": "succeeded"}) >= 2


def test_a_poll_turned_away_by_the_lock_leaves_the_gauges_alone() -> None:
    metrics.record_poll(asdict(PollSummary(staged=5, open=2)))
    turned_away = PollSummary(locked_by="beat-host:12:ab12cd34 until 10:00:00 UTC")
    metrics.record_poll(asdict(turned_away))
    # it saw nothing: the last real poll's view stands, not zeros
    assert _value("batchrouter_deferred_staged_items") == 5
    assert _value("batchrouter_provider_batches_open") == 2
