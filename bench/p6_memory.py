"""P6: peak RSS of a worker process with 500 calls in flight (bar < 250 MB since issue 17, which
moved the calls onto aiohttp's pool; goal < 150 MB).

One worker (threads pool, 20 slots x 25 items, BATCHROUTER_MAX_IN_FLIGHT=500) against the fake
server answering after 3 s, so 500 calls stay open together. RSS is sampled with psutil every
0.25 s; the figure is the largest RSS seen while the server counted >= 500 open calls. The
same process's RSS before its first task is printed as the baseline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Result
from bench.fake_run import fake_batch
from routing.settings import Settings

BAR_MB, GOAL_MB = 250.0, 150.0
IN_FLIGHT = 500


def run(quick: bool = False, **env: str) -> Result:
    settings = {
        "BATCHROUTER_CONCURRENCY": str(Settings.model_fields["concurrency"].default),
        "BATCHROUTER_CHUNK_SIZE": str(Settings.model_fields["chunk_size"].default),
        "BATCHROUTER_MAX_IN_FLIGHT": str(IN_FLIGHT),
        **env,
    }
    mark = 50 if quick else IN_FLIGHT
    with tempfile.TemporaryDirectory() as tmp:
        fake = fake_batch(
            Path(tmp),
            items=300 if quick else 2_500,
            workers=1,
            latency_ms=500 if quick else 3000,
            worker_env=settings,
            in_flight_mark=mark,
        )
    reached = fake.rss_at_in_flight > 0
    figure = fake.rss_at_in_flight if reached else fake.peak_rss_mb
    return Result(
        "P6",
        f"worker RSS with {mark} calls in flight",
        figure,
        "MB",
        fake.idle_rss_mb,
        "MB (same worker, idle)",
        f"< {BAR_MB:.0f} MB",
        reached and figure < BAR_MB,
        [
            f"peak calls in flight at the server {fake.peak_in_flight} "
            f"({'reached' if reached else 'did NOT reach'} {mark}); peak RSS {fake.peak_rss_mb:.0f} MB"
        ],
    )
