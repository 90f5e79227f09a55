"""Issue 19: `results` streams rows through a server-side cursor (flat memory at any size)
and writes the same records, in input order, as before."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import event

from ledger.db import get_engine, session_scope
from ledger.results import PAGE, write_results
from tests.batchrouter.test_status_scale import fill as fill_small

pytestmark = pytest.mark.postgres


def fill(url: str, count: int) -> str:
    from ledger.batches import register_batch
    from routing.types import InputItem

    items = [
        InputItem(external_id=f"=id{n}" if n == 7 else f"id{n}", line_no=n, text=f"t{n}")
        for n in range(count)
    ]
    with session_scope(url) as session:
        batch_id, _ = register_batch(
            session,
            items=items,
            task_type="ticket_classification",
            entry_tier="tier0",
            config_yaml="",
            config_source="test",
            name="big",
        )
    return batch_id


def test_results_stream_from_a_server_side_cursor_in_input_order(
    postgres_url: str, use_ledger, tmp_path: Path
) -> None:
    use_ledger(postgres_url)
    fill_small(postgres_url)  # another batch in the same table
    count = PAGE * 2 + 500
    batch_id = fill(postgres_url, count)
    cursors: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "FROM items" in statement and "ORDER BY items.line_no" in statement:
            cursors.append(type(cursor).__name__)

    engine = get_engine(postgres_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with session_scope(postgres_url) as session:
            written = write_results(session, batch_id, tmp_path / "out.jsonl")
            write_results(session, "big", tmp_path / "out.csv")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert cursors == ["ServerCursor", "ServerCursor"]
    assert written == count
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").open()]
    assert [line["id"] for line in lines] == ["=id7" if n == 7 else f"id{n}" for n in range(count)]
    assert lines[0] == {
        "id": "id0", "state": "queued", "output": None, "tier": "tier0", "deployment": None,
        "model": None, "attempts": 0, "cost_usd": 0.0, "error": None,
    }  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == count and rows[7]["id"] == "'=id7"  # still spreadsheet-safe
