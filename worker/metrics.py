"""Prometheus metrics from a worker process: items, attempts, cost, escalations, errors, queues.

The attempt and deferred-poll tasks (worker/tasks.py) hand their full summaries (a ChunkSummary
or PollSummary as a dict, with per-call facts) to `record_chunk`/`record_poll` in the process
that ran them and return counts only, so per-call model, cost and latency never reach Flower;
the pipeline itself knows nothing about metrics.
Queue depth is read from Redis at scrape time (LLEN, priority sub-lists summed), because Flower
shows a queue only while a worker consumes it.

The exporter starts when BATCHROUTER_METRICS_PORT is set, on 127.0.0.1 unless
BATCHROUTER_METRICS_ADDRESS says otherwise. Counters live in the process that runs
the tasks: the default `threads` pool (and `solo`) run them in the worker process itself. With
`prefork` the tasks run in child processes and this exporter would only see the parent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from celery.signals import task_failure, worker_init, worker_ready
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from routing.settings import get_settings

log = logging.getLogger("batchrouter.metrics")

ATTEMPT_TASK = "batchrouter.attempt"
# kombu's Redis transport emulates priorities with sub-lists "<queue>\x06\x16<step>".
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)  # step 0 is the queue's own list

ITEMS = Counter(
    "batchrouter_items",
    "Items leaving an attempt round, by the tier it ran on and the state it moved to "
    "(succeeded, failed, queued = escalated)",
    ["tier", "state"],
)
ATTEMPTS = Counter(
    "batchrouter_attempts",
    "Provider calls, by outcome (passed, check_failed, error)",
    ["tier", "deployment", "model", "outcome"],
)
COST = Counter("batchrouter_cost_usd", "USD spent on provider calls", ["tier", "model"])
TOKENS = Counter(
    "batchrouter_tokens", "Tokens billed, by kind (input, output)", ["tier", "model", "kind"]
)
CACHE_HITS = Counter(
    "batchrouter_cache_hits",
    "Answers served by the response cache instead of a provider call (kept out of the call, "
    "token, cost and latency metrics, which count provider calls only)",
    ["tier", "deployment", "model"],
)
ESCALATIONS = Counter(
    "batchrouter_escalations", "Items passed on to a higher tier", ["from_tier", "to_tier"]
)
PROVIDER_ERRORS = Counter(
    "batchrouter_provider_errors",
    "Failed provider calls by error class (rate_limit, server, timeout, ...)",
    ["tier", "deployment", "error_class"],
)
LATENCY = Histogram(
    "batchrouter_call_latency_seconds",
    "Provider call latency",
    ["tier", "deployment"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DEPLOYMENT_STATS_SKIPPED = Counter(
    "batchrouter_deployment_stats_skipped",
    "Deployment statistics updates skipped (op: read, begin, record, release; reason: error = "
    "Redis failed or its pool ran dry, redis_down = skipped while Redis rests after an error). "
    "Cooldowns and least-busy/latency selection go blind while this grows",
    ["op", "reason"],
)
CIRCUIT_EVENTS = Counter(
    "batchrouter_circuit_events",
    "Changes of a deployment's circuit (opened: transient failures in a row; reopened: a "
    "probe failed; closed: a probe answered), counted by the worker that made the change",
    ["deployment", "event"],
)
OUTAGE_WAITS = Counter(
    "batchrouter_outage_waits",
    "Items sent back to wait, no attempt spent, because every deployment of their tier was "
    "down (docs/operations.md)",
    ["tier"],
)
CHUNKS = Counter(
    "batchrouter_chunks",
    "attempt tasks (chunks of item ids) run, by result (ok, exception)",
    ["tier", "result"],
)

PROVIDER_BATCHES = Counter(
    "batchrouter_provider_batches",
    "Provider batches of deferred tiers, by step (formed, submitted, ended, ingested)",
    ["event"],
)
DEFERRED_STAGED = Gauge(
    "batchrouter_deferred_staged_items",
    "Items staged for a provider batch and not yet in one (as of this process's last poll)",
)
DEFERRED_OPEN = Gauge(
    "batchrouter_provider_batches_open",
    "Provider batches not yet ingested (as of this process's last poll)",
)

# The saving rate's denominator (worker/savings.py); the dashboard divides the cost by it.
PREMIUM_EQUIVALENT = Counter(
    "batchrouter_premium_equivalent_usd",
    "USD the items settled here would have cost on their task type's premium tier (the "
    "settling call's tokens at the last tier's first deployment's prices)",
    ["tier"],
)
AUDITS = Counter(
    "batchrouter_audits",
    "Audit calls (docs/quality.md) on answers a tier accepted, by whether the audit rung's "
    "answer agrees (agrees, differs); audit accuracy = agrees / all",
    ["tier", "result"],
)
# Set by the outage handling (a rung whose deployments are all down opens its circuit: items
# wait instead of failing); 1 while open, 0 once closed. Defined here so the dashboard's
# query names a metric every worker exports.
CIRCUIT_OPEN = Gauge(
    "batchrouter_circuit_open",
    '1 while the circuit of a deployment (or, with deployment="", a whole tier) is open',
    ["tier", "deployment"],
)

_queues: set[str] = set()  # tier queues to measure: the routing file's and the worker's own
_lock = threading.Lock()


def record_chunk(summary: dict[str, Any]) -> None:
    """Count one ChunkSummary (as returned by the attempt task)."""
    tier = str(summary.get("tier", ""))
    CHUNKS.labels(tier, "ok").inc()
    for state, count in (summary.get("by_state") or {}).items():
        ITEMS.labels(tier, state).inc(count)
    for to_tier, count in (summary.get("escalated_to") or {}).items():
        ESCALATIONS.labels(tier, to_tier).inc(count)
    if summary.get("waiting"):
        OUTAGE_WAITS.labels(tier).inc(summary["waiting"])
    _count_calls(summary.get("calls") or [])
    _count_premium(summary)
    for call in summary.get("calls") or []:
        if call.get("agrees") is not None:  # an audit of an answer this rung accepted
            AUDITS.labels(tier, "agrees" if call["agrees"] else "differs").inc()


def record_poll(summary: dict[str, Any]) -> None:
    """Count one deferred poll (a PollSummary as a dict): provider-batch steps, the calls it
    ingested and the items they settled; the staged and open gauges take its view."""
    for event in ("formed", "submitted", "ended", "ingested"):
        PROVIDER_BATCHES.labels(event).inc(summary.get(event) or 0)
    for tier, states in (summary.get("items_by_tier") or {}).items():
        for state, count in states.items():
            ITEMS.labels(tier, state).inc(count)
    _count_calls(summary.get("calls") or [])
    _count_premium(summary)
    if summary.get("locked_by"):
        return  # another poll held the lock: this one saw nothing, the gauges keep their view
    DEFERRED_STAGED.set(summary.get("staged") or 0)
    DEFERRED_OPEN.set(summary.get("open") or 0)


def _count_premium(summary: dict[str, Any]) -> None:
    for tier, usd in (summary.get("premium_usd") or {}).items():
        PREMIUM_EQUIVALENT.labels(tier).inc(usd)


def set_circuit(tier: str, deployment: str, is_open: bool) -> None:
    """For the outage handling: report a circuit opening or closing."""
    CIRCUIT_OPEN.labels(tier, deployment).set(1 if is_open else 0)


def _count_calls(calls: list[dict[str, Any]]) -> None:
    for call in calls:
        call_tier, deployment, model = call["tier"], call["deployment"], call["model"]
        if call.get("cache_hit"):  # no provider call: no tokens billed, no latency measured
            CACHE_HITS.labels(call_tier, deployment, model).inc()
            continue
        ATTEMPTS.labels(call_tier, deployment, model, call["outcome"]).inc()
        COST.labels(call_tier, model).inc(call.get("cost_usd") or 0.0)
        TOKENS.labels(call_tier, model, "input").inc(call.get("input_tokens") or 0)
        TOKENS.labels(call_tier, model, "output").inc(call.get("output_tokens") or 0)
        LATENCY.labels(call_tier, deployment).observe((call.get("latency_ms") or 0.0) / 1000)
        if call.get("outcome") == "error":
            PROVIDER_ERRORS.labels(
                call_tier, deployment, call.get("error_class") or "unknown"
            ).inc()


def queue_depths(client: Any, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting per queue: LLEN of the queue and of its priority sub-lists, summed."""
    names = sorted(set(queues))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{PRIORITY_SEP}{step}")
    lengths = pipe.execute()
    per = 1 + len(PRIORITY_STEPS)
    return {name: int(sum(lengths[i * per : (i + 1) * per])) for i, name in enumerate(names)}


class QueueDepthCollector(Collector):
    """`batchrouter_queue_depth{queue}`, read from the Redis broker at each scrape."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._client: Any = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "batchrouter_queue_depth",
            "Messages waiting on each tier queue (Redis LLEN, priority sub-lists summed)",
            labels=["queue"],
        )
        with _lock:
            queues = sorted(_queues)
        if queues and self.broker_url.startswith(("redis://", "rediss://")):
            try:
                if self._client is None:
                    import redis

                    self._client = redis.Redis.from_url(self.broker_url, socket_timeout=2)
                for name, depth in queue_depths(self._client, queues).items():
                    gauge.add_metric([name], depth)
            except Exception as exc:  # a scrape must not fail because Redis is briefly away
                log.warning("queue depth unavailable: %s", exc)
        yield gauge


def watch_queues(names: Iterable[str]) -> None:
    with _lock:
        _queues.update(n for n in names if n and not n.startswith("celery"))


def _tiers_from_config() -> list[str]:
    try:
        from routing.config import parse_config
        from routing.yamlfile import read_text

        path = get_settings().config  # only its tier names: no check code is imported
        return [
            tier.name for tier in parse_config(read_text(path), str(path), resolve_code=False).tiers
        ]
    except Exception:  # the routing file is optional for a worker; its own queue is enough
        return []


def start_exporter(port: int) -> None:
    """Serve /metrics on `port` and add the queue-depth collector (once per process)."""
    settings = get_settings()
    watch_queues(_tiers_from_config())
    REGISTRY.register(QueueDepthCollector(settings.resolved_broker_url()))
    # /metrics has no auth: loopback unless BATCHROUTER_METRICS_ADDRESS opens it (a scraper on
    # another host, on a private network).
    start_http_server(port, addr=settings.metrics_address)
    log.info("Prometheus metrics on %s:%d/metrics", settings.metrics_address, port)


@worker_init.connect
def _on_worker_init(**_: Any) -> None:
    port = get_settings().metrics_port
    if port is None:
        return
    try:
        start_exporter(port)
    except OSError as exc:  # e.g. two workers on one host given the same port
        log.error("cannot serve metrics on port %d: %s", port, exc)


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    with contextlib.suppress(AttributeError):
        watch_queues(sender.app.amqp.queues.consume_from.keys())


@task_failure.connect
def _on_task_failure(sender: Any = None, kwargs: dict | None = None, **_: Any) -> None:
    if getattr(sender, "name", None) == ATTEMPT_TASK:
        CHUNKS.labels(str((kwargs or {}).get("tier", "")), "exception").inc()
