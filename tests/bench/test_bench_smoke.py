"""The P5 benchmark runs end to end in quick mode (timings are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, TEST_POSTGRES_ADMIN_URL, require_service

pytestmark = pytest.mark.postgres


def test_p5_quick_mode() -> None:
    require_service("PostgreSQL", TEST_POSTGRES_ADMIN_URL)
    # A subprocess, as a user runs it (and so that no test's captured stdout leaks into
    # modules that keep a reference to sys.stdout, like alembic's Config default).
    result = subprocess.run(
        [sys.executable, "-m", "bench.p5_report", "--rows", "20000"]
        + ["--admin-url", TEST_POSTGRES_ADMIN_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "P5 report over" in result.stdout and "naive baseline" in result.stdout
