"""`celery -A worker worker -Q <tier> ...`, exactly as the README shows it first, runs tier
workers that finish the README's example batch (real processes, Redis, SQLite)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from batchrouter.api import batch_report, submit_batch, wait_for_batch
from routing.config import load_config
from tests.conftest import EXAMPLES, ROOT
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]
CONFIG = EXAMPLES / "routing.yaml"


def readme_celery_command() -> list[str]:
    """The first `celery -A worker worker` line of the README, its queue made a placeholder."""
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^celery -A worker worker .*$", readme, re.M)
    assert line, "the README no longer shows the celery command"
    words = shlex.split(line.group(0))
    queue = words.index("-Q") + 1
    return words[:queue] + ["TIER"] + words[queue + 1 :]


def test_the_readme_celery_command_runs_the_example_batch(
    use_ledger, sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    url = use_ledger(sqlite_url)
    command = readme_celery_command()
    assert command[:4] == ["celery", "-A", "worker", "worker"]
    ladder = load_config(CONFIG).task_types["ticket_classification"].tier_names
    with running_workers(
        ladder,
        database_url=url,
        broker_url=redis_url,
        log_dir=tmp_path,
        celery_command=command,
        extra_env={"BATCHROUTER_CONFIG": str(CONFIG)},
    ):
        submitted = submit_batch(EXAMPLES / "tickets.jsonl", "ticket_classification", config=CONFIG)
        status = wait_for_batch(submitted.batch_id, timeout=240)
    assert status.total == submitted.items == 600
    assert status.succeeded + status.failed == 600
    report = batch_report(submitted.batch_id)
    # Every tier's worker took part: the cheap tier answered most, the others the escalations.
    assert {line.tier for line in report.by_tier} == set(ladder)
    for tier in ladder:
        assert "ready" in (tmp_path / f"worker-{tier}.log").read_text()
