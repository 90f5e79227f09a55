"""Export a batch's results: one record per item, keyed by the producer's id, in input order.

JSONL and CSV stream from the database in pages through a server-side cursor, so a
million-item batch never sits in memory (issue 19: peak RSS flat from 10k to 100k items);
Parquet (when pyarrow is installed) is written in row groups of the same size.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.batches import find_batch
from ledger.models import Item

FIELDS = ["id", "state", "output", "tier", "deployment", "model", "attempts", "cost_usd", "error"]
# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), =cmd|...); outputs, ids and names are data from producers and models.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("jsonl", "csv", "parquet")
PAGE = 1000  # rows fetched (and, for Parquet, written) at a time


class ExportError(ValueError):
    """A format that cannot be written here (e.g. Parquet without pyarrow)."""


def iter_results(
    session: Session, batch_ref: str, state: str | None = None
) -> Iterator[dict[str, Any]]:
    batch = find_batch(session, batch_ref)
    query = select(
        Item.external_id,
        Item.state,
        Item.output,
        Item.tier,
        Item.deployment,
        Item.model,
        Item.attempts,
        Item.cost_usd,
        Item.error,
    ).where(Item.batch_id == batch.id)
    if state is not None:
        query = query.where(Item.state == state)
    # Only the exported columns: the items' texts stay in the database. `yield_per` as an
    # execution option opens a server-side cursor (PostgreSQL), so rows arrive a page at a
    # time; called on the result instead, psycopg would already have fetched them all.
    query = query.order_by(Item.line_no).execution_options(yield_per=PAGE)
    for row in session.execute(query):
        record: dict[str, Any] = dict(zip(FIELDS, row, strict=True))
        record["cost_usd"] = round(float(record["cost_usd"] or 0.0), 10)
        yield record


def format_for(out: Path, explicit: str | None = None) -> str:
    """The format asked for, else the one the file name says (default JSONL)."""
    fmt = (explicit or out.suffix.lstrip(".") or "jsonl").lower()
    fmt = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ExportError(f"unknown results format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def write_results(
    session: Session,
    batch_ref: str,
    out: Path,
    state: str | None = None,
    fmt: str | None = None,
) -> int:
    """Write the batch's results to `out` as JSONL, CSV or Parquet; return how many items.

    The rows go to a temporary file beside `out`, renamed over it at the end: an unknown
    batch, a lost connection or Ctrl-C leaves an existing `out` as it was (issue 16). A
    device or pipe (`--out /dev/stdout`) is written directly."""
    fmt = format_for(out, fmt)
    if out.exists() and not out.is_file():
        return _write(iter_results(session, batch_ref, state), out, fmt)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        count = _write(iter_results(session, batch_ref, state), partial, fmt)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _write(records: Iterator[dict[str, Any]], out: Path, fmt: str) -> int:
    if fmt == "parquet":
        return _write_parquet(records, out)
    count = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            for record in records:
                writer.writerow({key: spreadsheet_safe(value) for key, value in record.items()})
                count += 1
        else:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    return count


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell no spreadsheet runs as a formula: text starting with =, +, -, @, tab or
    carriage return gets a leading single quote (OWASP, CSV injection). Numbers are ours and
    stay numbers (a negative saving is -0.12, not text)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_results_jsonl(
    session: Session, batch_ref: str, out: Path, state: str | None = None
) -> int:
    return write_results(session, batch_ref, out, state, "jsonl")


def _write_parquet(records: Iterator[dict[str, Any]], out: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("Parquet needs pyarrow: pip install pyarrow") from None
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("state", pa.string()),
            ("output", pa.string()),
            ("tier", pa.string()),
            ("deployment", pa.string()),
            ("model", pa.string()),
            ("attempts", pa.int32()),
            ("cost_usd", pa.float64()),
            ("error", pa.string()),
        ]
    )
    count = 0
    with pq.ParquetWriter(str(out), schema) as writer:
        while page := list(islice(records, PAGE)):
            writer.write_table(pa.Table.from_pylist(page, schema=schema))
            count += len(page)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count
