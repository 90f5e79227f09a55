"""S1: a nightly at 100k items (issue 19): `status` in a blink, `results` in flat memory.

    .venv/bin/python -m bench.s1_scale [--items 100000] [--runs 7]

Fills a throwaway PostgreSQL ledger by COPY with two batches mid-run (a small one of a tenth of
the size and the big one: 80% succeeded over three tiers, 5% failed, the rest queued, running
or waiting), then runs the commands a user runs, each as a whole process:

- `batchrouter status BATCH`, median wall time of `--runs` runs (bar < 0.5 s); the baseline in
  the same run is a bare `python -c pass`, the floor any command pays;
- `batchrouter results BATCH --out x.jsonl`, median wall time per 100k items, and its peak RSS
  on the small and on the big batch: the ratio big/small is the flatness (bar < 1.25x, where
  reading everything into memory would grow with the size).

- a worker at the default log level (INFO) over a fake-provider batch at 300 ms (one worker,
  default settings): bytes of log per item (bar < 20).

Only ANALYZE runs after the fill, no VACUUM: the visibility map is what a ledger has before
autovacuum reaches it, so the index-only scan may still visit the heap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, Result, postgres_database

STATUS_BAR_S = 0.5
FLAT_BAR = 1.25  # peak RSS of results at N items / at N/10 items
LOG_BAR = 20.0  # bytes of worker log per item at INFO
CONFIG = (ROOT / "examples" / "routing.yaml").read_text()
TIERS = ("tier0", "tier1", "tier2")
MODELS = {"tier0": "sim-nano", "tier1": "sim-mini", "tier2": "sim-premium"}
BIN = Path(sys.executable).parent / "batchrouter"
# Measures the peak RSS of one child process: RUSAGE_CHILDREN of a wrapper with one child.
RSS_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def fill(url: str, batches: list[tuple[str, int]], seed: int = 19) -> None:
    """COPY the batches (id, items) and their items into the ledger at `url`."""
    from ledger.db import make_engine

    rng = random.Random(seed)
    engine = make_engine(url)
    raw = engine.raw_connection()
    item_id = 0
    try:
        cursor = raw.cursor()
        start = datetime(2026, 12, 1, tzinfo=UTC)
        with cursor.copy(  # type: ignore[attr-defined]
            "COPY batches (id, name, task_type, project, config_yaml, config_source, total, done,"
            " created_at) FROM STDIN"
        ) as copy:
            for batch_id, size in batches:
                copy.write_row(
                    (batch_id, f"nightly-{size}", "ticket_classification", "nightly", CONFIG,
                     "routing.yaml", size, int(size * 0.85), start)
                )  # fmt: skip
        with cursor.copy(  # type: ignore[attr-defined]
            "COPY items (id, batch_id, external_id, line_no, text, fields, state, tier, attempts,"
            " cost_usd, output, deployment, model, error, updated_at) FROM STDIN"
        ) as copy:
            for batch_id, size in batches:
                for line in range(1, size + 1):
                    item_id += 1
                    roll = rng.random()
                    tier = TIERS[0 if roll < 0.6 else 1 if roll < 0.9 else 2]
                    state = (
                        "succeeded" if roll < 0.8 else "failed" if roll < 0.85
                        else ("queued", "running", "waiting")[line % 3]
                    )  # fmt: skip
                    done = state in ("succeeded", "failed")
                    copy.write_row(
                        (item_id, batch_id, f"ticket-{line:07d}", line,
                         "My order has not arrived and I was charged twice " * 3, "{}", state,
                         tier, TIERS.index(tier) + 1, 0.000123 * (TIERS.index(tier) + 1),
                         rng.choice(["billing", "refund_request", "shipping_delay"]) if done
                         else None, MODELS[tier] if done else None, MODELS[tier] if done else None,
                         "check failed: not a label" if state == "failed" else None, start)
                    )  # fmt: skip
        cursor.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), %s)", (item_id,))
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def wall(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
    return times


def peak_rss_mb(command: list[str], env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *command],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


def explain(url: str, batch_id: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        plan = connection.execute(
            text(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT state, tier, count(*) FROM items "
                "WHERE batch_id = :b GROUP BY state, tier"
            ),
            {"b": batch_id},
        ).scalar_one()
    engine.dispose()
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else ""))
        stack.extend(node.get("Plans", []))
    return f"{' > '.join(nodes)}, {plan[0]['Execution Time']:.0f} ms"


def run(quick: bool = False, items: int | None = None, runs: int | None = None) -> list[Result]:
    size = items or (10_000 if quick else 100_000)
    runs = runs or (3 if quick else 7)
    small_size = max(size // 10, 100)
    big, small = uuid.uuid4().hex, uuid.uuid4().hex
    with postgres_database("batchrouter_s1") as url, tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        fill(url, [(small, small_size), (big, size)])
        print(f"  filled {size + small_size:,} items in {time.perf_counter() - began:.1f} s")
        env = {**os.environ, "BATCHROUTER_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        floor = statistics.median(wall([sys.executable, "-c", "pass"], env, runs))
        status_s = statistics.median(wall([str(BIN), "status", big], env, runs))
        status_json = subprocess.run(
            [str(BIN), "status", big, "--format", "json"], env=env, check=True,
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        counted = sum(json.loads(status_json)["by_state"].values())
        plan = explain(url, big)
        out = Path(tmp) / "results.jsonl"
        results_cmd = [str(BIN), "results", big, "--out", str(out)]
        results_s = statistics.median(wall(results_cmd, env, max(runs // 2, 1)))
        exported = sum(1 for _ in out.open())
        rss_big = peak_rss_mb(results_cmd, env)
        rss_small = peak_rss_mb([str(BIN), "results", small, "--out", str(out)], env)
    per_100k = results_s * 100_000 / size
    log_items = 300 if quick else 2_000
    with tempfile.TemporaryDirectory() as tmp:
        from bench.fake_run import fake_batch

        logged = fake_batch(Path(tmp), items=log_items, workers=1, latency_ms=300, loglevel="INFO")
    per_item = logged.log_bytes / log_items
    return [
        Result(
            "S1a",
            f"`status` of a {size:,}-item batch, whole process (median of {runs})",
            status_s * 1000,
            "ms",
            floor * 1000,
            "ms (`python -c pass`)",
            f"< {STATUS_BAR_S * 1000:.0f} ms",
            status_s < STATUS_BAR_S and counted == size,
            [f"counts add up to {counted:,}", f"status query: {plan}"],
        ),
        Result(
            "S1b",
            f"`results --out x.jsonl` per 100k items ({size:,}-item batch)",
            per_100k,
            "s",
            None,
            "",
            "recorded",
            exported == size,
            [f"{exported:,} lines written"],
        ),
        Result(
            "S1c",
            f"peak RSS of `results` at {size:,} items",
            rss_big,
            "MB",
            rss_small,
            f"MB (at {small_size:,} items)",
            f"< {FLAT_BAR}x",
            rss_big < rss_small * FLAT_BAR,
            [],
        ),
        Result(
            "S1d",
            f"worker log at INFO per item ({log_items:,} items, fake provider at 300 ms)",
            per_item,
            "bytes",
            None,
            "",
            f"< {LOG_BAR:.0f} bytes",
            per_item < LOG_BAR,
            [
                f"{logged.log_bytes:,} bytes in all, the worker's start-up banner included",
                f"same run, from the ledger: provider latency p50 {logged.latency_p50_ms:.0f} ms, "
                f"queued in the worker p50 {logged.queued_p50_ms:.0f} ms (fake server: 300 ms)",
            ],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    from bench.common import bench_redis

    with bench_redis() as redis_url:
        os.environ["BATCHROUTER_BROKER_URL"] = redis_url
        results = run(items=args.items, runs=args.runs)
    for result in results:
        print(result.line())
        for note in result.notes:
            print(f"    {note}")
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
