"""P2: items/s with a 1 s provider latency, fake server on loopback, 2 worker processes
(bar 400/s, goal 800/s). The server runs in its own process; PostgreSQL ledger, Redis broker.

Each worker keeps up to BATCHROUTER_MAX_IN_FLIGHT calls open on its one asyncio loop
(Celery threads pool, BATCHROUTER_CONCURRENCY slots x BATCHROUTER_CHUNK_SIZE items each).
The baseline is the ceiling Little's law gives the same in-flight cap: 2 x cap / 1 s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Result
from bench.fake_run import fake_batch

BAR, GOAL = 400.0, 800.0
WORKER_ENV = {  # the defaults, spelled out so the doc shows them
    "BATCHROUTER_CONCURRENCY": "20",
    "BATCHROUTER_CHUNK_SIZE": "25",
    "BATCHROUTER_MAX_IN_FLIGHT": "500",
}


def run(quick: bool = False, **env: str) -> Result:
    settings = {**WORKER_ENV, **env}
    items = 1_500 if quick else 12_000
    with tempfile.TemporaryDirectory() as tmp:
        fake = fake_batch(Path(tmp), items=items, workers=2, latency_ms=1000, worker_env=settings)
    ceiling = 2 * int(settings["BATCHROUTER_MAX_IN_FLIGHT"]) / 1.0
    knobs = ", ".join(f"{k.removeprefix('BATCHROUTER_').lower()}={v}" for k, v in settings.items())
    return Result(
        "P2",
        "items/s, 1 s provider latency, 2 worker processes",
        fake.rate,
        "items/s",
        ceiling,
        "items/s ceiling (2 x in-flight cap / 1 s)",
        f">= {BAR:.0f}/s",
        fake.rate >= BAR,
        [
            f"{items:,} items in {fake.seconds:.1f} s; {knobs}",
            f"peak calls in flight at the server {fake.peak_in_flight}; "
            f"peak worker RSS {fake.peak_rss_mb:.0f} MB",
        ],
    )
