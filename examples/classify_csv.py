"""Bulk ticket classification: label every row of a CSV and write the CSV back with a new column.

    python examples/classify_csv.py examples/tickets.csv --out tickets_labelled.csv

Workers must be running (`batchrouter worker --tier 0`, `--tier 1`, `--tier 2`), on the same
ledger and broker settings as this script. The CSV needs a `text` column; its `id` column (the
line number when there is none) is the join key between your rows and the results. Exit codes:
0 every row labelled, 1 some rows could not be labelled (their label is empty, the reason is in
`label_error`), 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from batchrouter.api import submit_batch, wait_for_batch
from ledger.db import session_scope
from ledger.results import iter_results, spreadsheet_safe
from producers.readers import InputError
from routing.config import ConfigError


def label_rows(
    source: Path, out: Path, config: Path | None, column: str, timeout: float
) -> tuple[int, int]:
    """Classify `source`, write `out` with `column` added; return (rows, rows without a label)."""
    submitted = submit_batch(
        source, "ticket_classification", config=config, name=f"classify-{source.stem}"
    )
    print(f"batch {submitted.batch_id}: {submitted.items} rows submitted", file=sys.stderr)
    wait_for_batch(submitted.batch_id, timeout=timeout)
    with session_scope() as session:
        results = {r["id"]: r for r in iter_results(session, submitted.batch_id)}

    unlabelled = 0
    with (
        source.open(newline="", encoding="utf-8") as src,
        out.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.DictReader(src)
        fields = list(reader.fieldnames or [])
        writer = csv.DictWriter(dst, fieldnames=[*fields, column, f"{column}_error"])
        writer.writeheader()
        for row in reader:
            # the producer's id is the join key; rows without one are keyed by line number
            key = row.get("id") or str(reader.line_num)
            result = results.get(key, {})
            ok = result.get("state") == "succeeded"
            unlabelled += not ok
            writer.writerow(
                {
                    **row,
                    # model answers and provider errors: escaped like `results --out x.csv`
                    column: spreadsheet_safe(result.get("output")) if ok else "",
                    f"{column}_error": ""
                    if ok
                    else spreadsheet_safe(result.get("error") or "not processed"),
                }
            )
    return len(results), unlabelled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path, nargs="?", default=Path("examples/tickets.csv"))
    parser.add_argument("--out", type=Path, default=Path("tickets_labelled.csv"))
    parser.add_argument("--config", type=Path, default=None, help="routing file")
    parser.add_argument("--column", default="label", help="name of the new column")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    try:
        rows, unlabelled = label_rows(args.csv, args.out, args.config, args.column, args.timeout)
    except (InputError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {rows - unlabelled}/{rows} rows labelled", file=sys.stderr)
    return 1 if unlabelled else 0


if __name__ == "__main__":
    sys.exit(main())
