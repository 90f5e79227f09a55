"""P2: items/s with a 1 s provider latency, fake server on loopback, 2 worker processes, against
a bare aiohttp client measured in the same run (bar 70% of it, goal 90%); and LiteLLM's Router
over the same items as the peer line (issue 17).

Each worker keeps up to BATCHROUTER_MAX_IN_FLIGHT calls open on its one asyncio loop (Celery
threads pool, BATCHROUTER_CONCURRENCY slots x BATCHROUTER_CHUNK_SIZE items each). The baseline
(bench/peers.py) is 2 bare aiohttp client processes of as many concurrent calls, over the same
items and prompt, against the same fake server process: the ceiling of this machine at this
latency and concurrency, measured rather than computed (Little's law says 2 x cap / 1 s, which
a machine of 2 shared cores does not reach). The fake server runs in its own process; its CPU
share of one core is printed for each measurement, so a saturated server would show.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import httpx

from bench.common import Result, start_fake_server, stop, write_items
from bench.fake_run import fake_batch, server_config
from bench.peers import PeerRun, measure
from routing.settings import Settings

BAR, GOAL = 0.70, 0.90  # of the bare-aiohttp baseline
LATENCY_MS = 1000
# The tail line: real providers' latency is long-tailed. Lognormal, median 1 s, sigma 1: the
# mean is 1.65 s, one call in a hundred takes over 10 s (capped at 10 s here).
TAIL = {"distribution": "lognormal", "ms": LATENCY_MS, "spread": 1.0, "max_ms": 10_000}
WORKERS = 2
WORKER_ENV = {  # the defaults, spelled out so the doc shows them
    "BATCHROUTER_CONCURRENCY": str(Settings.model_fields["concurrency"].default),
    "BATCHROUTER_CHUNK_SIZE": str(Settings.model_fields["chunk_size"].default),
    "BATCHROUTER_MAX_IN_FLIGHT": str(Settings.model_fields["max_in_flight"].default),
}


def _line(run: PeerRun, client: str = "") -> str:
    errors = f", {run.errors} errors ({run.error_sample})" if run.errors else ""
    return (
        f"{run.kind}{client}: {run.rate:,.0f} calls/s ({run.calls:,} calls in {run.seconds:.1f} s{errors}); "
        f"fake server CPU {run.server_cpu:.0%} of a core, clients {run.clients_cpu:.0%}"
    )


def run(quick: bool = False, **env: str) -> list[Result]:
    settings = {**WORKER_ENV, **env}
    cap = int(settings["BATCHROUTER_MAX_IN_FLIGHT"])
    items = 1_500 if quick else 12_000
    has_litellm = importlib.util.find_spec("litellm") is not None
    # The HTTP client the workers and the adapter line use (BATCHROUTER_HTTP_CLIENT).
    client = env.get("BATCHROUTER_HTTP_CLIENT") or Settings().http_client
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = start_fake_server(server_config(LATENCY_MS), folder / "fake-server.log")
        process, url = server
        try:
            source = write_items(folder / "peers.jsonl", items)  # the items P2 submits
            shape = {"processes": WORKERS, "concurrency": cap}
            ceiling = measure("aiohttp", url, process.pid, source, **shape)
            # The HTTP layer alone (adapter + providers/http.py, no queue or ledger): what of
            # the gap to the baseline is the client's and what is the pipeline's.
            adapter = measure("adapter", url, process.pid, source, env=env, **shape)
            httpx.post(f"{url}/_reset", timeout=10)
            fake = fake_batch(
                folder,
                items=items,
                workers=WORKERS,
                latency_ms=LATENCY_MS,
                worker_env=settings,
                server=server,
            )
            peer = None
            if has_litellm:
                httpx.post(f"{url}/_reset", timeout=10)
                peer = measure("litellm", url, process.pid, source, **shape)
        finally:
            stop([process])
        tail = _tail(folder, items // 2, settings, shape)
    knobs = ", ".join(f"{k.removeprefix('BATCHROUTER_').lower()}={v}" for k, v in settings.items())
    share = fake.rate / ceiling.rate if ceiling.rate else 0.0
    results = [
        Result(
            "P2",
            f"items/s, {LATENCY_MS / 1000:g} s provider latency, {WORKERS} worker processes",
            fake.rate,
            "items/s",
            ceiling.rate,
            f"calls/s bare aiohttp ({WORKERS} processes x {cap} concurrent, same server)",
            f">= {BAR:.0%} of baseline (goal {GOAL:.0%})",
            share >= BAR,
            [
                f"{items:,} items in {fake.seconds:.1f} s; {knobs}",
                f"peak calls in flight at the server {fake.peak_in_flight}; "
                f"peak worker RSS {fake.peak_rss_mb:.0f} MB; "
                f"fake server CPU {fake.server_cpu:.0%} of a core",
                f"baseline {_line(ceiling)}",
                f"the adapter alone, no pipeline ({adapter.rate / ceiling.rate:.0%} of baseline): "
                f"{_line(adapter, f' over {client}')}",
            ],
        )
    ]
    results.append(tail)
    if peer is None:
        results[0].notes.append("LiteLLM peer not run: `pip install -e '.[bench]'`")
    else:
        results.append(
            Result(
                "P2 peer",
                "P2 items/s against LiteLLM Router calls/s (fallbacks on), same items and server",
                fake.rate,
                "items/s",
                peer.rate,
                "calls/s LiteLLM Router",
                "none (a peer, not a bar)",
                True,
                [f"peer {_line(peer)}"],
            )
        )
    return results


def _tail(folder: Path, items: int, settings: dict, shape: dict) -> Result:
    """P2 again with long-tailed latency, against bare aiohttp on the same server over as many
    items (the last stragglers weigh the same on both). A task slot holds its chunk until the
    chunk's slowest item ends; this line shows what that costs."""
    source = write_items(folder / "tail.jsonl", items)
    config = server_config(LATENCY_MS)
    process, url = server = start_fake_server({**config, "latency": TAIL}, folder / "tail.log")
    try:
        ceiling = measure("aiohttp", url, process.pid, source, **shape)
        httpx.post(f"{url}/_reset", timeout=10)
        fake = fake_batch(
            folder, items=items, workers=WORKERS, latency_ms=LATENCY_MS, worker_env=settings,
            server=server,
        )  # fmt: skip
    finally:
        stop([process])
    return Result(
        "P2 tail",
        f"P2 with long-tailed latency (lognormal, median {LATENCY_MS / 1000:g} s, sigma 1)",
        fake.rate,
        "items/s",
        ceiling.rate,
        "calls/s bare aiohttp, same server",
        "none (shows what stragglers cost)",
        True,
        [
            f"{items:,} items in {fake.seconds:.1f} s; peak calls in flight at the server "
            f"{fake.peak_in_flight}; baseline {_line(ceiling)}"
        ],
    )
