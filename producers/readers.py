"""Read producer input (JSONL or CSV) into validated items, or fail naming the file and line.

The whole file is read and checked before anything is registered or enqueued, so a bad line
leaves nothing half-submitted.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from routing.types import InputItem

MAX_TEXT_BYTES = 1_000_000  # one item's text; larger inputs are almost always a mistake
ID_KEYS = ("id", "item_id", "external_id")


class InputError(ValueError):
    """Bad producer input; the message names the file and the line (or row)."""


def read_items(
    path: str | Path, text_field: str = "text", id_field: str | None = None
) -> list[InputItem]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from None
    if path.suffix.lower() == ".csv":
        items = _read_csv(path, content, text_field, id_field)
    else:
        items = _read_jsonl(path, content, text_field, id_field)
    if not items:
        raise InputError(f"{path}: no items found")
    seen: dict[str, int] = {}
    for item in items:
        if item.external_id in seen:
            raise InputError(
                f"{path}:{item.line_no}: id {item.external_id!r} repeats line {seen[item.external_id]}"
            )
        seen[item.external_id] = item.line_no
    return items


def _read_jsonl(path: Path, content: str, text_field: str, id_field: str | None) -> list[InputItem]:
    items = []
    for line_no, line in enumerate(io.StringIO(content), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{line_no}: not valid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise InputError(
                f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}"
            )
        items.append(_make_item(path, line_no, record, text_field, id_field))
    return items


def _read_csv(path: Path, content: str, text_field: str, id_field: str | None) -> list[InputItem]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    if reader.fieldnames is None or text_field not in reader.fieldnames:
        raise InputError(
            f"{path}:1: the header has no {text_field!r} column (got {reader.fieldnames})"
        )
    items = []
    for record in reader:
        line_no = reader.line_num
        if None in record:  # more cells than header columns
            raise InputError(f"{path}:{line_no}: more cells than the header has columns")
        items.append(_make_item(path, line_no, dict(record), text_field, id_field))
    return items


def _make_item(
    path: Path, line_no: int, record: dict[str, Any], text_field: str, id_field: str | None
) -> InputItem:
    text = record.pop(text_field, None)
    if text is None:
        raise InputError(f"{path}:{line_no}: missing the {text_field!r} field")
    if not isinstance(text, str):
        raise InputError(f"{path}:{line_no}: {text_field!r} must be a string")
    if not text.strip():
        raise InputError(f"{path}:{line_no}: {text_field!r} is empty")
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise InputError(
            f"{path}:{line_no}: {text_field!r} is {len(text.encode('utf-8')):,} bytes, "
            f"over the {MAX_TEXT_BYTES:,}-byte limit per item"
        )
    key = id_field or next((k for k in ID_KEYS if k in record), None)
    external_id = record.pop(key, None) if key else None
    if external_id is None or str(external_id).strip() == "":
        external_id = str(line_no)  # no producer id: the line number is the join key
    expected = record.pop("expected", None)
    return InputItem(
        external_id=str(external_id),
        text=text,
        line_no=line_no,
        expected=None if expected in (None, "") else str(expected),
        fields=record,
    )
