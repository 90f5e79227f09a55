"""Export a batch's results: one record per item, keyed by the producer's id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from batchrouter.ledger.batches import find_batch
from batchrouter.ledger.models import Item


def iter_results(
    session: Session, batch_ref: str, state: str | None = None
) -> Iterator[dict[str, Any]]:
    batch = find_batch(session, batch_ref)
    query = select(Item).where(Item.batch_id == batch.id).order_by(Item.line_no)
    if state is not None:
        query = query.where(Item.state == state)
    for item in session.scalars(query).yield_per(1000):
        yield {
            "id": item.external_id,
            "state": item.state,
            "output": item.output,
            "tier": item.tier,
            "deployment": item.deployment,
            "model": item.model,
            "attempts": item.attempts,
            "cost_usd": round(item.cost_usd, 10),
            "error": item.error,
        }


def write_results_jsonl(
    session: Session, batch_ref: str, out: Path, state: str | None = None
) -> int:
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for record in iter_results(session, batch_ref, state):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
