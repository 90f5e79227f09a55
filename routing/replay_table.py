"""The recorded-outcomes table the `replay` provider serves, and its writer.

One row per recorded answer, as JSONL (one object per line) or CSV (a header row):

| column | required | meaning |
| --- | --- | --- |
| item_id (or id, external_id) | yes | the producer's item id (the `id` of the input file) |
| model | yes | the model that answered (a deployment's `model`) |
| text (or output, response) | yes | the answer, possibly empty |
| input_tokens, output_tokens | no | usage; with cached_input_tokens, cache_write_tokens, reasoning_tokens |
| cost_usd | no | what the call cost; when given it is reported instead of usage x prices |
| latency_ms | no | recorded latency (replay itself answers at once) |
| logprobs | no | the answer's token logprobs (a JSON list; in CSV a JSON string) |
| error_class, error_message | no | a recorded failure (transient, permanent, ...) instead of an answer |
| score | no | recorded correctness of the answer, 0 to 1 (tests passed, a grader's mark), for tasks where comparing with `expected` cannot judge it (code, free text); `evaluate` counts it as the item's accuracy |
| deployment, tier, attempt_no, outcome | no | where the row came from (written by the ledger export) |

A row with neither tokens nor cost gets its usage estimated from the prompt and the answer.
Rows for the same (item_id, model) after the first answer are extra samples: a consensus's
second answer of that model is the second row, and so on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ID_KEYS = ("item_id", "id", "external_id")
TEXT_KEYS = ("text", "output", "response")
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
COLUMNS = (
    "item_id",
    "model",
    "deployment",
    "tier",
    "attempt_no",
    "outcome",
    "text",
    *TOKEN_KEYS,
    "cost_usd",
    "latency_ms",
)
ERROR_CLASSES = ("transient", "rate_limited", "permanent", "context_length", "bad_response")


class ReplayTableError(ValueError):
    """A table that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class ReplayRow:
    item_id: str
    model: str
    text: str
    line_no: int
    tokens: dict[str, int] | None = None  # None when the row recorded no usage at all
    cost_usd: float | None = None
    latency_ms: float = 0.0
    logprobs: list[float] | None = None
    error_class: str | None = None
    error_message: str | None = None
    score: float | None = None  # recorded correctness, 0 to 1


@dataclass
class ReplayTable:
    path: str
    rows: dict[tuple[str, str], list[ReplayRow]]

    def row_at(self, line_no: int) -> ReplayRow | None:
        """The row read from line `line_no` of the file (a served answer's request id names it)."""
        for rows in self.rows.values():
            for row in rows:
                if row.line_no == line_no:
                    return row
        return None

    def lookup(self, item_id: str, model: str) -> ReplayRow | None:
        """The row to serve: the first recorded answer, else the first recorded failure."""
        found = self.rows.get((item_id, model))
        if not found:
            return None
        for row in found:
            if row.error_class is None:
                return row
        return found[0]

    def samples(self, item_id: str, model: str) -> list[ReplayRow]:
        """Every recorded answer for the item on the model, in file order."""
        return [row for row in self.rows.get((item_id, model), []) if row.error_class is None]

    @property
    def models(self) -> list[str]:
        return sorted({model for _, model in self.rows})

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def read_replay_table(path: str | Path) -> ReplayTable:
    path = Path(path)
    if not path.is_file():
        raise ReplayTableError(f"{path}: replay table not found (from {Path.cwd()})")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReplayTableError(f"{path}: not valid UTF-8 ({exc})") from None
    rows: dict[tuple[str, str], list[ReplayRow]] = {}
    for line_no, record in _records(path, content):
        row = _row(path, line_no, record)
        rows.setdefault((row.item_id, row.model), []).append(row)
    return ReplayTable(str(path), rows)


def _records(path: Path, content: str) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))
        for record in reader:
            if None in record:
                raise ReplayTableError(f"{path}:{reader.line_num}: more cells than columns")
            yield reader.line_num, {k: v for k, v in record.items() if v != ""}
        return
    for line_no, line in enumerate(io.StringIO(content), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayTableError(f"{path}:{line_no}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ReplayTableError(f"{path}:{line_no}: expected a JSON object")
        yield line_no, {k: v for k, v in record.items() if v is not None}


def _first(record: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in record:
            return record[key]
    return None


def _row(path: Path, line_no: int, record: Mapping[str, Any]) -> ReplayRow:
    where = f"{path}:{line_no}"
    item_id = _first(record, ID_KEYS)
    if item_id is None or str(item_id).strip() == "":
        raise ReplayTableError(f"{where}: missing item_id")
    model = record.get("model")
    if not model:
        raise ReplayTableError(f"{where}: missing model")
    error_class = record.get("error_class") or None
    if error_class is not None and error_class not in ERROR_CLASSES:
        raise ReplayTableError(
            f"{where}: error_class {error_class!r} is not one of {ERROR_CLASSES}"
        )
    text = _first(record, TEXT_KEYS)
    if text is None and error_class is None:
        if path.suffix.lower() == ".csv":
            text = ""  # an empty CSV cell: the model answered nothing
        else:
            raise ReplayTableError(f"{where}: missing text (the recorded answer)")
    tokens: dict[str, int] | None = None
    if any(key in record for key in TOKEN_KEYS):
        tokens = {key: _number(where, record, key, int) for key in TOKEN_KEYS if key in record}
    cost = _number(where, record, "cost_usd", float) if "cost_usd" in record else None
    latency = _number(where, record, "latency_ms", float) if "latency_ms" in record else 0.0
    score = _number(where, record, "score", float) if "score" in record else None
    if score is not None and score > 1:
        raise ReplayTableError(f"{where}: score must be between 0 and 1, got {score}")
    logprobs = record.get("logprobs")
    if isinstance(logprobs, str):
        try:
            logprobs = json.loads(logprobs)
        except json.JSONDecodeError:
            raise ReplayTableError(f"{where}: logprobs is not a JSON list") from None
    if logprobs is not None and not (
        isinstance(logprobs, list) and all(isinstance(x, int | float) for x in logprobs)
    ):
        raise ReplayTableError(f"{where}: logprobs must be a list of numbers")
    return ReplayRow(
        item_id=str(item_id),
        model=str(model),
        text="" if text is None else str(text),
        line_no=line_no,
        tokens=tokens,
        cost_usd=cost,
        latency_ms=latency,
        logprobs=[float(x) for x in logprobs] if logprobs is not None else None,
        error_class=error_class,
        error_message=record.get("error_message"),
        score=score,
    )


def _number(where: str, record: Mapping[str, Any], key: str, kind: type) -> Any:
    value = record[key]
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ReplayTableError(f"{where}: {key} must be a number, got {value!r}") from None
    if number < 0:
        raise ReplayTableError(f"{where}: {key} must not be negative")
    return number


def write_replay_rows(out: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows (dicts with COLUMNS keys, extra keys kept in JSONL) as JSONL, or CSV when
    `out` ends in .csv. Returns the number of rows written."""
    out = Path(out)
    count = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        if out.suffix.lower() == ".csv":
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
                count += 1
        else:
            for row in rows:
                handle.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
                count += 1
    return count
