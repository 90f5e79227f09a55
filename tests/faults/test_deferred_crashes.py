"""A poller killed (SIGKILL) at each crash point of a deferred tier neither loses items nor
sends them twice: after upload, after the provider created the batch, after the results were
downloaded, and in the middle of writing them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from batchrouter.api import submit_batch
from ledger.db import session_scope
from ledger.models import Attempt, ProviderBatch
from providers.fake_server import running_fake_server
from tests.conftest import ROOT
from tests.helpers.deferred import (
    drive,
    fake_config,
    fake_stats,
    routing_file,
    submissions_per_item_attempt,
    tickets,
    wait_staged,
)
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]
ITEMS = 30


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-deferred-key-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-deferred-key-0000")


def _crash_poller(point: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.helpers.deferred_crash_child", point],
        cwd=ROOT, env=os.environ.copy(), capture_output=True, timeout=120,
    )  # fmt: skip


CASES = [
    ("openai", "after_upload", "sqlite"),
    ("openai", "after_create", "sqlite"),
    ("anthropic", "after_create", "sqlite"),
    ("openai", "after_download", "sqlite"),
    ("anthropic", "mid_write", "sqlite"),
    pytest.param("openai", "after_create", "postgres", marks=pytest.mark.postgres),
    pytest.param("openai", "mid_write", "postgres", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("provider", "point", "ledger"), CASES)
def test_a_poller_killed_at_a_crash_point_loses_nothing_and_sends_nothing_twice(
    provider: str,
    point: str,
    ledger: str,
    use_ledger,
    redis_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    ledger_url = use_ledger(request.getfixturevalue(f"{ledger}_url"))
    with running_fake_server(fake_config(processing_s=0.3)) as url:
        config = routing_file(tmp_path, url, provider)
        with running_workers(
            ["nightly", "premium"], database_url=ledger_url, broker_url=redis_url,
            log_dir=tmp_path, config=config,
        ):  # fmt: skip
            submitted = submit_batch(
                tickets(tmp_path, ITEMS), "ticket_classification", config=config
            )
            wait_staged(submitted.batch_id, ITEMS)

            crashed = _crash_poller(point)
            assert crashed.returncode == -9, crashed.stderr.decode()[-3000:]
            with session_scope() as session:
                pb = session.scalars(select(ProviderBatch)).one()
                state, provider_id = pb.state, pb.provider_id
                deferred_rows = session.scalar(
                    select(func.count()).where(Attempt.provider_batch_id.is_not(None))
                )
            # What the ledger knew when the poller died.
            expected = {
                "after_upload": ("prepared", False),
                "after_create": ("submitting", False),
                "after_download": ("ended", True),
                "mid_write": ("ended", True),
            }[point]
            assert (state, provider_id is not None) == expected
            assert deferred_rows == 0, "nothing was ingested before the crash"

            status = drive(submitted.batch_id, timeout=180)
        stats = fake_stats(url)

    assert status.succeeded == ITEMS, status.by_state
    counts = submissions_per_item_attempt(stats)
    assert len(counts) == ITEMS and set(counts.values()) == {1}, "each item was sent once"
    with session_scope() as session:
        per_item = dict(
            session.execute(
                select(Attempt.item_id, func.count())
                .where(Attempt.provider_batch_id.is_not(None))
                .group_by(Attempt.item_id)
            ).all()
        )
        pbs = list(session.scalars(select(ProviderBatch)))
    assert len(per_item) == ITEMS and set(per_item.values()) == {1}, "each result written once"
    assert len(pbs) == 1 and pbs[0].state == "ingested"
