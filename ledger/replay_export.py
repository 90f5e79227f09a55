"""Export an earlier batch from the ledger as a replay table (and its items as a gold file).

    python -m ledger.replay_export BATCH outcomes.jsonl [--items items.jsonl]

writes one row per attempt that produced an answer (passed or failed its checks; calls that
ended in an error are left out), in the format the `replay` provider reads. Re-run the batch's
items through other rules with `batchrouter evaluate` and no API spend. Note that a passed
attempt stores the output as its checks normalised it (a label check keeps the canonical label).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.batches import find_batch
from ledger.models import Attempt, Item
from routing.replay_table import write_replay_rows

ANSWERED = ("passed", "check_failed")


def iter_replay_rows(
    session: Session, batch_ref: str, outcomes: Sequence[str] = ANSWERED
) -> Iterator[dict[str, Any]]:
    """The batch's answers as replay rows; `outcomes` picks which attempts (`("audit",)`: the
    audit answers, which `batchrouter advise` replays too)."""
    batch = find_batch(session, batch_ref)
    query = (
        select(Item.external_id, Attempt)
        .join(Item, Item.id == Attempt.item_id)
        .where(
            Attempt.batch_id == batch.id,
            Attempt.outcome.in_(outcomes),
            Attempt.output.is_not(None),
        )
        .order_by(Item.line_no, Attempt.attempt_no)
    )
    for external_id, attempt in session.execute(query).yield_per(1000):
        yield {
            "item_id": external_id,
            "model": attempt.model,
            "deployment": attempt.deployment,
            "tier": attempt.tier,
            "attempt_no": attempt.attempt_no,
            "outcome": attempt.outcome,
            "text": attempt.output,
            "input_tokens": attempt.input_tokens,
            "output_tokens": attempt.output_tokens,
            "cached_input_tokens": attempt.cached_input_tokens,
            "cache_write_tokens": attempt.cache_write_tokens,
            "reasoning_tokens": attempt.reasoning_tokens,
            "cost_usd": float(attempt.cost_usd),  # a replay row holds a number; repr is exact
            "latency_ms": round(attempt.latency_ms, 3),
        }


def export_replay_table(session: Session, batch_ref: str, out_path: str | Path) -> int:
    """Write the batch's answered attempts to `out_path` (JSONL, or CSV for .csv); row count."""
    return write_replay_rows(out_path, iter_replay_rows(session, batch_ref))


def export_items(session: Session, batch_ref: str, out_path: str | Path) -> int:
    """Write the batch's items (id, text, expected and their other fields) as JSONL, in input
    order: the items file `batchrouter evaluate --items` reads."""
    batch = find_batch(session, batch_ref)
    query = select(Item).where(Item.batch_id == batch.id).order_by(Item.line_no)
    count = 0
    with Path(out_path).open("w", encoding="utf-8") as handle:
        for item in session.scalars(query).yield_per(1000):
            record: dict[str, Any] = {**(item.fields or {}), "id": item.external_id}
            record["text"] = item.text
            if item.expected is not None:
                record["expected"] = item.expected
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.replay_export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("batch", help="batch id, id prefix or name")
    parser.add_argument("out", type=Path, help="replay table to write (.jsonl or .csv)")
    parser.add_argument("--items", type=Path, help="also write the batch's items (JSONL)")
    args = parser.parse_args(argv)
    from ledger.batches import UnknownBatch
    from ledger.db import session_scope

    try:
        with session_scope(readonly=True) as session:
            rows = export_replay_table(session, args.batch, args.out)
            print(f"wrote {rows} recorded outcomes to {args.out}", file=sys.stderr)
            if args.items:
                items = export_items(session, args.batch, args.items)
                print(f"wrote {items} items to {args.items}", file=sys.stderr)
    except UnknownBatch as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
