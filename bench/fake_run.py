"""Run one batch through real worker processes against the fake provider (P2, P4, P6)."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    LABELS,
    done_counter,
    fake_stats,
    flush_redis,
    postgres_database,
    rescue,
    start_fake_server,
    start_worker,
    stop,
    write_items,
    write_routing,
)

KEY_ENV = "BENCH_FAKE_KEY"


@dataclass
class FakeRun:
    items: int
    seconds: float  # first finished item to the last
    rate: float  # items/s over that span
    peak_rss_mb: float = 0.0  # the largest worker process seen
    idle_rss_mb: float = 0.0  # the same process before its first task
    peak_in_flight: int = 0  # at the fake server
    rss_at_in_flight: float = 0.0  # a worker's RSS while the server saw >= `in_flight_mark`
    stats_before: dict = field(default_factory=dict)
    stats_after: dict = field(default_factory=dict)
    # (time, requests, 429s, prompt tokens) as the server counted them, every 0.25 s
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    log_bytes: int = 0  # what the workers wrote to stdout and stderr, at `loglevel`
    latency_p50_ms: float = 0.0  # the ledger's attempts: the provider's latency, median
    queued_p50_ms: float = 0.0  # and the time calls waited in the worker, median
    # The fake server's CPU while the batch ran, as a share of one core (it runs on one): near
    # 1.0 the server, not the workers, would be the limit.
    server_cpu: float = 0.0


def server_config(latency_ms: float, limits: dict | None = None) -> dict:
    """The fake provider's config for a benchmark batch: answers one of the labels."""
    return {
        "latency": {"ms": latency_ms},
        "answer": {"mode": "label", "labels": LABELS},
        "limits": limits or {},
        "api_key": "bench-key",
        "seed": 1,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def fake_batch(
    tmp: Path,
    *,
    items: int,
    workers: int,
    latency_ms: float,
    limits: dict | None = None,
    deployment_limits: dict | None = None,
    worker_env: dict[str, str] | None = None,
    in_flight_mark: int = 0,
    timeout: float = 900,
    loglevel: str = "WARNING",
    server: tuple[subprocess.Popen, str] | None = None,
) -> FakeRun:
    """`server`: a fake provider already running (started with server_config(latency_ms,
    limits)), which the caller stops; else one is started and stopped here."""
    import psutil

    from producers.submit import submit_batch
    from routing.settings import get_settings

    owned = server is None
    if server is None:
        server = start_fake_server(server_config(latency_ms, limits), tmp / "fake-server.log")
    server_process, url = server
    deployment = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "api_base": f"{url}/v1",
        "api_key_env": KEY_ENV,
        "prices": {"input": 0.15, "output": 0.6},
        "max_output_tokens": 16,
        "timeouts": {"read": 60, "pool": 60},
        **(deployment_limits or {}),
    }
    routing = write_routing(tmp / "fake.yaml", {"fake": deployment}, ["fake"])
    flush_redis()
    processes = []
    try:
        with postgres_database("batchrouter_fake") as db:
            import os

            os.environ["BATCHROUTER_DATABASE_URL"] = db
            get_settings.cache_clear()
            try:
                source = write_items(tmp / "fake.jsonl", items)
                submitted = submit_batch(source, "ticket_classification", config=routing)
            finally:
                os.environ.pop("BATCHROUTER_DATABASE_URL", None)
                get_settings.cache_clear()
            env = {KEY_ENV: "bench-key", **(worker_env or {})}
            processes = [
                start_worker("tier0", routing, db, tmp / f"w{i}.log", loglevel, **env)
                for i in range(workers)
            ]
            handles = [psutil.Process(p.pid) for p in processes]
            time.sleep(0.5)
            run = FakeRun(items, 0.0, 0.0)
            run.idle_rss_mb = max(h.memory_info().rss for h in handles) / 2**20
            run.stats_before = fake_stats(url)
            server_cpu_before, began = cpu_seconds(server_process.pid), time.perf_counter()
            stop_sampling = threading.Event()

            def sample() -> None:
                while not stop_sampling.is_set():
                    try:
                        rss = max(h.memory_info().rss for h in handles) / 2**20
                        stats = fake_stats(url)
                    except Exception:
                        time.sleep(0.2)
                        continue
                    run.peak_rss_mb = max(run.peak_rss_mb, rss)
                    run.peak_in_flight = max(run.peak_in_flight, stats["in_flight"])
                    if in_flight_mark and stats["in_flight"] >= in_flight_mark:
                        run.rss_at_in_flight = max(run.rss_at_in_flight, rss)
                    run.samples.append(
                        (time.time(), stats["requests"], stats["rate_limited"],
                         stats["prompt_tokens"])
                    )  # fmt: skip
                    time.sleep(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            done = done_counter(submitted.batch_id, db)
            first: tuple[float, int] | None = None
            deadline = time.monotonic() + timeout
            moved = (time.monotonic(), -1)
            while True:
                count, now = done(), time.perf_counter()
                if count != moved[1]:
                    moved = (time.monotonic(), count)
                elif time.monotonic() - moved[0] > 30:
                    rescue(db)
                    moved = (time.monotonic(), count)
                if count and first is None:
                    first = (now, count)
                if count >= items and first is not None:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{count} of {items} items done in {timeout:.0f} s")
                time.sleep(0.05)
            stop_sampling.set()
            sampler.join(5)
            run.seconds = now - first[0]
            run.rate = (items - first[1]) / max(run.seconds, 1e-6)
            run.server_cpu = (cpu_seconds(server_process.pid) - server_cpu_before) / (
                time.perf_counter() - began
            )
            run.stats_after = fake_stats(url)
            run.latency_p50_ms, run.queued_p50_ms = ledger_latency(db)
            stop(processes)
            processes = []
            run.log_bytes = sum((tmp / f"w{i}.log").stat().st_size for i in range(workers))
    finally:
        stop(processes + ([server_process] if owned else []))
        flush_redis()
    return run


def ledger_latency(database_url: str) -> tuple[float, float]:
    """Median provider latency and median time queued in the worker, as the ledger has them."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms), "
                    "percentile_disc(0.5) WITHIN GROUP (ORDER BY queued_ms) FROM attempts"
                )
            ).one()
    finally:
        engine.dispose()
    return float(row[0] or 0.0), float(row[1] or 0.0)
