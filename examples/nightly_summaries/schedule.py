"""A Celery beat schedule that submits the nightly summarization batch at 02:30.

    celery -A examples.nightly_summaries.schedule worker -Q nightly -B --loglevel INFO

(`-B` runs beat inside this small worker; with several hosts run `celery ... beat` once and the
worker anywhere.) The tier workers (`batchrouter worker --tier N`) do the summarizing; this app
only collects the folder and submits it, on the same broker and ledger settings.

The task submits and returns the batch id without waiting for the batch: a task that waited
for hours would outlive the broker's visibility timeout and be delivered a second time. Follow
the batch with `batchrouter status nightly-YYYY-MM-DD`, or use the cron line in README.md,
whose `--wait` turns the outcome into an exit code.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from celery import Celery
from celery.schedules import crontab

from batchrouter.api import submit_batch
from examples.nightly_summaries.collect import collect_folder
from routing.settings import get_settings

DOCS = Path(os.environ.get("NIGHTLY_DOCS", "/data/docs"))  # the folder to summarize

app = Celery("nightly_summaries", broker=get_settings().resolved_broker_url())
app.conf.update(
    task_default_queue="nightly",
    task_ignore_result=True,
    timezone="UTC",
    beat_schedule={
        "nightly-summaries": {
            "task": "nightly.summarize_folder",
            "schedule": crontab(hour=2, minute=30),
            "args": [str(DOCS)],
        }
    },
)


@app.task(name="nightly.summarize_folder")
def summarize_folder(folder: str, config: str | None = None) -> str | None:
    """Submit every long-enough .txt file in `folder` as today's batch; return its id."""
    name = f"nightly-{datetime.now(UTC):%Y-%m-%d}"
    with tempfile.TemporaryDirectory() as scratch:
        batch_file = Path(scratch) / f"{name}.jsonl"
        written, _ = collect_folder(Path(folder), batch_file)
        if not written:
            return None
        submitted = submit_batch(
            batch_file, "summarization", config=config, name=name, project="nightly"
        )
    return submitted.batch_id
