"""`make demo` runs on nothing but Python: SQLite ledger, filesystem broker, real workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.timeout(300)
def test_the_demo_runs_a_batch_to_the_cost_report(tmp_path: Path) -> None:
    # Run from a copy of the examples so the demo's .batchrouter folder stays in tmp_path.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHROUTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "batchrouter", "demo", "--items", "500"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "500/500" in out
    assert "By tier" in out and "saving" in out and "sim provider" in out
    # It ends with one line of advice read from the batch's ledger (batchrouter/learning/quick.py).
    last = out.strip().splitlines()[-1]
    assert last.startswith("advice: ") and not last.startswith("advice: none ("), out[-500:]
    assert (tmp_path / ".batchrouter" / "demo" / "ledger.db").is_file()
    # no server was used: the broker is a folder of message files
    assert (tmp_path / ".batchrouter" / "demo" / "broker").is_dir()


@pytest.mark.timeout(300)
def test_the_deferred_nightly_example_runs_two_nights_against_the_batch_apis(
    tmp_path: Path,
) -> None:
    """`make demo-deferred`: night 1 through the fake server's OpenAI and Anthropic batch APIs,
    night 2 (the same documents) from the response cache; each report splits the saving."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHROUTER_")}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "examples.nightly_summaries.deferred_demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    nights = result.stdout.split("night 2:")
    assert len(nights) == 2, result.stdout
    first, second = nights
    assert "60 succeeded" in first and "60 succeeded" in second
    # Night 1: every document went through a provider batch; night 2 made no provider call.
    assert "(0 cache hits)" in first and "deferred calls" in first
    # Night 2 climbs the ladder as night 1 did, every rung's answer from the cache: at least
    # one hit per document (more for those that escalated), and nothing to pay.
    hits = re.search(r"\((\d+) cache hits\)", second)
    assert hits is not None and int(hits.group(1)) >= 60, second
    assert "Total cost $0.0000" in second and "60 succeeded, 0 failed" in second
    ledger = tmp_path / ".batchrouter" / "deferred-demo" / "ledger.db"
    assert ledger.is_file()
