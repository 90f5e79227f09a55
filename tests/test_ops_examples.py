"""The operations examples as the README runs them: real workers, Redis broker, SQLite ledger."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.schedules import crontab
from sqlalchemy import func, select

from batchrouter.api import batch_status, wait_for_batch
from ledger.db import session_scope
from ledger.models import Item
from tests.conftest import EXAMPLES, ROOT
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]
LADDER = ["tier0", "tier1", "tier2"]
LABELS = (EXAMPLES / "labels.txt").read_text().split()


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def failed_items(batch: str) -> int:
    with session_scope() as session:
        batch_id = batch_status(batch).batch_id
        return int(
            session.scalar(
                select(func.count()).where(Item.batch_id == batch_id, Item.state == "failed")
            )
            or 0
        )


def make_documents(folder: Path, count: int) -> None:
    folder.mkdir()
    documents = [json.loads(line) for line in (EXAMPLES / "documents.jsonl").open()][:count]
    for document in documents:
        (folder / f"{document['id']}.txt").write_text(document["text"])
    (folder / "empty.txt").write_text("")
    (folder / "short.txt").write_text("Too short to summarize.")


def test_classify_csv_and_nightly_summaries(
    use_ledger, sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    url = use_ledger(sqlite_url)
    env = {
        **os.environ,
        "BATCHROUTER_DATABASE_URL": url,
        "BATCHROUTER_BROKER_URL": redis_url,
        "BATCHROUTER_HOME": str(tmp_path / "home"),
        "BATCHROUTER_CONFIG": str(EXAMPLES / "routing.yaml"),
    }
    docs = tmp_path / "docs"
    make_documents(docs, 12)
    with running_workers(LADDER, database_url=url, broker_url=redis_url, log_dir=tmp_path):
        # Bulk ticket classification: the CSV comes back with a label column.
        labelled = tmp_path / "labelled.csv"
        result = run(
            ["examples/classify_csv.py", "examples/tickets.csv", "--out", str(labelled)], env
        )
        assert result.returncode in (0, 1), result.stderr
        rows = list(csv.DictReader(labelled.open()))
        source = list(csv.DictReader((EXAMPLES / "tickets.csv").open()))
        assert [r["id"] for r in rows] == [r["id"] for r in source]
        assert list(rows[0]) == ["id", "text", "expected", "label", "label_error"]
        unlabelled = [r for r in rows if not r["label"]]
        assert all(r["label"] in LABELS for r in rows if r["label"])
        assert len(unlabelled) == failed_items("classify-tickets")
        assert result.returncode == (1 if unlabelled else 0)

        # Nightly summaries, the cron way: collect, then submit --wait (exit code = outcome).
        batch_file = tmp_path / "nightly.jsonl"
        collected = run(
            ["-m", "examples.nightly_summaries.collect", str(docs), str(batch_file)], env
        )
        assert collected.returncode == 0, collected.stderr
        assert "skipped empty.txt" in collected.stderr and "skipped short.txt" in collected.stderr
        submitted = run(
            ["-m", "batchrouter", "submit", str(batch_file), "--type", "summarization"]
            + ["--name", "nightly-test", "--project", "nightly", "--wait"],
            env,
        )
        assert submitted.returncode == (1 if failed_items("nightly-test") else 0), submitted.stderr
        out = tmp_path / "summaries.jsonl"
        assert (
            run(["-m", "batchrouter", "results", "nightly-test", "--out", str(out)], env).returncode
            == 0
        )
        summaries = [json.loads(line) for line in out.read_text().splitlines()]
        assert [s["id"] for s in summaries] == [f"D-{n:03d}.txt" for n in range(1, 13)]

        # Nightly summaries, the beat way: the scheduled task body submits the folder.
        from examples.nightly_summaries import schedule

        entry = schedule.app.conf.beat_schedule["nightly-summaries"]
        assert (
            isinstance(entry["schedule"], crontab) and entry["task"] == "nightly.summarize_folder"
        )
        batch_id = schedule.summarize_folder.run(str(docs), str(EXAMPLES / "routing.yaml"))
        status = wait_for_batch(batch_id, timeout=120)
        assert status.total == 12 and status.name.startswith("nightly-")
