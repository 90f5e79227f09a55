"""A deferred poll run by a worker shows in its Prometheus metrics: provider-batch steps, the
calls it ingested (cost, tokens, outcomes) and the staged/open gauges."""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

from prometheus_client import REGISTRY

from worker import metrics
from worker.deferred.poller import PollSummary


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_poll_task_result_is_counted() -> None:
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
    metrics._on_task_postrun(
        task=SimpleNamespace(name="batchrouter.deferred_poll"),
        retval=asdict(summary),
        state="SUCCESS",
    )
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


def test_a_poll_turned_away_by_the_lock_leaves_the_gauges_alone() -> None:
    metrics._on_task_postrun(
        task=SimpleNamespace(name="batchrouter.deferred_poll"),
        retval=asdict(PollSummary(staged=5, open=2)),
        state="SUCCESS",
    )
    turned_away = PollSummary(locked_by="beat-host:12:ab12cd34 until 10:00:00 UTC")
    metrics._on_task_postrun(
        task=SimpleNamespace(name="batchrouter.deferred_poll"),
        retval=asdict(turned_away),
        state="SUCCESS",
    )
    # it saw nothing: the last real poll's view stands, not zeros
    assert _value("batchrouter_deferred_staged_items") == 5
    assert _value("batchrouter_provider_batches_open") == 2
