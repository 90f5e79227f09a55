"""P2's baseline and peer clients (bench/peers.py) run end to end against a fake server of their
own: every call answered, the server's CPU measured (figures are printed, never asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.common import start_fake_server, stop, write_items
from bench.fake_run import server_config
from bench.peers import measure

KINDS = ["aiohttp", "adapter", "litellm"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", KINDS)
def test_peer_clients_answer_every_call(tmp_path: Path, kind: str) -> None:
    if kind == "litellm" and importlib.util.find_spec("litellm") is None:
        pytest.skip("the `bench` extra is not installed")
    process, url = start_fake_server(server_config(50), tmp_path / "fake.log")
    try:
        items = write_items(tmp_path / "items.jsonl", 60)
        run = measure(kind, url, process.pid, items, processes=2, concurrency=10, timeout=120)
    finally:
        stop([process])
    assert (run.calls, run.errors) == (60, 0), run.error_sample
    assert run.rate > 0 and run.server_cpu >= 0 and run.clients_cpu > 0
