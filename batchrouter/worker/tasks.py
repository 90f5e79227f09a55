"""Celery tasks. Names say what they do; arguments are ids, never item text."""

from __future__ import annotations

from dataclasses import asdict

from batchrouter.worker.app import app
from batchrouter.worker.pipeline import process_chunk


@app.task(name="batchrouter.attempt", acks_late=True)
def attempt(item_ids: list[int], tier: str) -> dict:
    """Run one attempt round for a chunk of items on `tier`; see worker/pipeline.py."""
    return asdict(process_chunk(item_ids, tier))
