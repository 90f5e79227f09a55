"""The benchmark suite in quick mode (a smoke test: figures are printed, never asserted), and
the bulk publishing it measures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_results_render_and_merge_into_the_doc(tmp_path, monkeypatch) -> None:
    import bench.__main__ as runner
    from bench.common import Result

    monkeypatch.setattr(runner, "DOC", tmp_path / "benchmarks.md")
    (tmp_path / "benchmarks.md").write_text(
        f"# B\n\nprose\n\n{runner.START}\nold\n{runner.END}\nend\n"
    )
    p3 = Result("P3", "enqueue", 12_000, "items/s", 2_000, "msgs/s", ">= 5x", True)
    p6 = Result("P6", "rss", 190, "MB", 50, "MB idle", "< 300 MB", True)
    s1 = Result("S1a", "status", 450, "ms", 40, "ms (pass)", "< 500 ms", True)
    runner.write_doc(runner.render([p3, p6, s1], "python -m bench", 12))
    runner.write_doc(runner.render([p3], "python -m bench --only P3", 3))
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.startswith("# B\n\nprose") and text.endswith(f"{runner.END}\nend\n")
    assert "| P3: enqueue | 12,000.0 items/s | 2,000.0 msgs/s | 6.00x | >= 5x | yes |" in text
    assert "From an earlier run" in text and "| P6: rss |" in text  # kept, not lost
    assert "| S1a: status |" in text
    assert "old" not in text


@pytest.mark.redis
def test_bulk_publish_pipelines_chunks_and_reports_progress(redis_url: str) -> None:
    import redis

    from worker.publish import publish_items

    seen: list[int] = []
    messages = publish_items(list(range(1, 104)), "tier0", 10, pipeline=3, progress=seen.append)
    assert messages == 11
    assert seen == [30, 30, 30, 13]  # one report per pipelined round trip of 3 messages
    client = redis.Redis.from_url(redis_url)
    assert client.llen("tier0") == 11
    client.close()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_the_quick_suite_runs(redis_url: str, postgres_url: str) -> None:
    """P3 (bulk enqueue) and P4 (the global rate limiter against the fake server's real limits,
    two worker processes) end to end, in a few seconds each."""
    env = os.environ.copy()
    env["BATCHROUTER_BENCH_REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "P3,P4", "--no-write"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for target in ("P3:", "P4:"):
        assert target in done.stdout, done.stdout
    assert "429 responses: 0" in done.stdout, done.stdout  # the limiter delayed, never overran
