"""`make demo` runs on nothing but Python: SQLite ledger, filesystem broker, real workers."""

from __future__ import annotations

import os
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
    assert (tmp_path / ".batchrouter" / "demo" / "ledger.db").is_file()
    # no server was used: the broker is a folder of message files
    assert (tmp_path / ".batchrouter" / "demo" / "broker").is_dir()
