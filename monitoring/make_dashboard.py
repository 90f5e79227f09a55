"""Write monitoring/grafana/dashboards/batchrouter.json, the Grafana dashboard of the monitoring
profile. The panels are declared here, once, and the JSON is generated, so every panel has the
same data source, units and layout rules; tests/test_monitoring.py checks that the committed
JSON is this script's output and that every query names a metric a running worker exports.

    python monitoring/make_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worker.queues import CONTROL_QUEUE

DATASOURCE = {"type": "prometheus", "uid": "batchrouter-prometheus"}  # provisioning/datasources
OUT = Path(__file__).parent / "grafana" / "dashboards" / "batchrouter.json"

# Tier queues only: the control queue (beat's reconcile tasks) is no tier's backlog.
QUEUES = f'batchrouter_queue_depth{{queue!="{CONTROL_QUEUE}"}}'
SAVING = (
    "1 - sum(rate(batchrouter_cost_usd_total[{w}])) "
    "/ sum(rate(batchrouter_premium_equivalent_usd_total[{w}]))"
)
# (title, type, unit, width, height, [(expr, legend)], description)
PANELS: list[tuple[str, str, str, int, int, list[tuple[str, str]], str]] = [
    (
        "Spend, last hour",
        "stat",
        "currencyUSD",
        6,
        4,
        [("sum(increase(batchrouter_cost_usd_total[1h]))", "spend")],
        "USD of every provider call recorded in the last hour, failed and escalated calls included.",
    ),
    (
        "Saving rate vs premium-only (15 min)",
        "stat",
        "percentunit",
        6,
        4,
        [(SAVING.format(w="15m"), "saving")],
        "1 - spend / what the settled items would have cost on their premium tier "
        "(worker/savings.py). An estimate of the report's figure over the window.",
    ),
    (
        "Open circuits",
        "stat",
        "short",
        6,
        4,
        [("sum(max by (tier, deployment) (batchrouter_circuit_open))", "open")],
        "Deployments (or whole tiers) whose circuit is open: their items wait instead of failing.",
    ),
    (
        "Messages waiting on tier queues",
        "stat",
        "short",
        6,
        4,
        [(f"sum(max by (queue) ({QUEUES}))", "waiting")],
        "Messages (chunks of item ids) on the Redis tier queues; every worker reports every queue: max, then sum.",
    ),
    (
        "Spend per minute by tier and model",
        "timeseries",
        "currencyUSD",
        12,
        8,
        [
            (
                "sum by (tier, model) (rate(batchrouter_cost_usd_total[5m])) * 60",
                "{{tier}} {{model}}",
            )
        ],
        "USD per minute, averaged over 5 minutes.",
    ),
    (
        "Saving rate vs premium-only",
        "timeseries",
        "percentunit",
        12,
        8,
        [(SAVING.format(w="5m"), "saving rate")],
        "1 - spend / premium-only equivalent of the items settled, over 5 minutes.",
    ),
    (
        "Pass rate per rung",
        "timeseries",
        "percentunit",
        12,
        8,
        [
            (
                'sum by (tier) (rate(batchrouter_attempts_total{outcome="passed"}[5m])) '
                '/ sum by (tier) (rate(batchrouter_attempts_total{outcome!="audit"}[5m]))',
                "{{tier}}",
            )
        ],
        "Share of a tier's provider calls (audit calls left out) whose answer passed every "
        "check of its rung.",
    ),
    (
        "Escalation rate per rung",
        "timeseries",
        "percentunit",
        12,
        8,
        [
            (
                "sum by (tier) (label_replace(rate(batchrouter_escalations_total[5m]), "
                '"tier", "$1", "from_tier", "(.*)")) '
                "/ sum by (tier) (rate(batchrouter_items_total[5m]))",
                "{{tier}}",
            )
        ],
        "Share of the items leaving a tier's attempt round that were passed to the next tier.",
    ),
    (
        "Queue depth per tier",
        "timeseries",
        "short",
        8,
        8,
        [(f"max by (queue) ({QUEUES})", "{{queue}}")],
        "Messages waiting on each tier queue (Redis LLEN at scrape time).",
    ),
    (
        "429s per minute (rate limited)",
        "timeseries",
        "short",
        8,
        8,
        [
            (
                "sum by (tier, deployment) "
                '(rate(batchrouter_provider_errors_total{error_class="rate_limited"}[5m])) * 60',
                "{{tier}} {{deployment}}",
            )
        ],
        "Calls answered 429 with a retry hint (quota 429s are permanent errors, in the next row).",
    ),
    (
        "Open circuits by deployment",
        "timeseries",
        "short",
        8,
        8,
        [("max by (tier, deployment) (batchrouter_circuit_open)", "{{tier}} {{deployment}}")],
        "1 while open.",
    ),
    (
        "Provider errors per minute by class",
        "timeseries",
        "short",
        8,
        8,
        [
            (
                "sum by (error_class) (rate(batchrouter_provider_errors_total[5m])) * 60",
                "{{error_class}}",
            )
        ],
        "Failed calls by class: rate_limited, transient, permanent, context_length, bad_response.",
    ),
    (
        "Audit accuracy per rung (1 h)",
        "timeseries",
        "percentunit",
        8,
        8,
        [
            (
                'sum by (tier) (increase(batchrouter_audits_total{result="agrees"}[1h])) '
                "/ sum by (tier) (increase(batchrouter_audits_total[1h]))",
                "{{tier}}",
            )
        ],
        "Share of audited answers a rung accepted that the audit rung agrees with (task types "
        "with `audit:`, docs/quality.md); empty without audits. The report's interval is the "
        "reference.",
    ),
    (
        "Call latency p95 by tier",
        "timeseries",
        "s",
        8,
        8,
        [
            (
                "histogram_quantile(0.95, sum by (tier, le) "
                "(rate(batchrouter_call_latency_seconds_bucket[5m])))",
                "{{tier}}",
            )
        ],
        "95th percentile of provider call latency, over 5 minutes.",
    ),
]


def _layout() -> list[dict[str, int]]:
    """Left to right, wrapping at Grafana's 24 columns."""
    x = y = row_height = 0
    places = []
    for _, _, _, width, height, _, _ in PANELS:
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        places.append({"x": x, "y": y, "w": width, "h": height})
        x, row_height = x + width, max(row_height, height)
    return places


def dashboard() -> dict[str, Any]:
    panels = []
    for number, (panel, place) in enumerate(zip(PANELS, _layout(), strict=True), start=1):
        title, kind, unit, _, _, queries, description = panel
        targets = [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(queries)
        ]
        defaults: dict[str, Any] = {"unit": unit, "noValue": "0"}
        if unit == "percentunit":
            defaults.update(min=0, max=1)
        panels.append(
            {
                "id": number,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": place,
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
                if kind == "timeseries"
                else {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
                "targets": targets,
            }
        )
    return {
        "uid": "batchrouter-costs",
        "title": "batchrouter: live cost",
        "description": "Spend, saving, pass and escalation rates, queues, 429s and circuits, "
        "from the workers' /metrics (docs/operations.md).",
        "tags": ["batchrouter"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
