"""Statements a worker repeats keep reading by index as the ledger grows (PostgreSQL).

A claim reads the chunk's own rows, whatever the size of the batch just submitted: submit
refreshes the items table's statistics (ledger/batches.py), without which the planner, seeing
the table as it was before the batch, walked the whole batch for every chunk.

psycopg prepares a statement the fifth time a connection runs it, and PostgreSQL may then keep
a generic plan chosen while the table was nearly empty: a sequential scan. The cache lookup of
every chunk's claim did that, and read the whole response cache each time: 2.3 million rows
for 20,000 items, the worker's PostgreSQL time per item doubling as the cache grew. Workers'
connections plan each run for its own parameters (plan_cache_mode, ledger/db.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.cache import CacheEntry, lookup, store
from ledger.db import session_scope
from ledger.models import Item
from ledger.transitions import claim_items
from producers.submit import submit_batch

pytestmark = pytest.mark.postgres
ROUTING = Path(__file__).resolve().parents[2] / "examples" / "routing.yaml"


def entry(key: str) -> CacheEntry:
    return CacheEntry(key, "default", "d", "m", "billing", None, 0.001, "b/1/1", 3600.0)


def rows_scanned(session, table: str = "response_cache") -> int:  # type: ignore[no-untyped-def]
    """Rows this backend read from `table` by sequential scan, of the counts it has not yet
    flushed to the statistics (so: compare two readings within one transaction)."""
    found = session.execute(
        text("SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = :table"),
        {"table": table},
    ).scalar()
    return int(found or 0)


def rows_read(session, table: str) -> int:  # type: ignore[no-untyped-def]
    """Rows of `table` this backend read by any scan (same caveat as rows_scanned)."""
    found = session.execute(
        text(
            "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
            "WHERE relname = :table"
        ),
        {"table": table},
    ).scalar()
    return int(found or 0)


def test_the_cache_lookup_reads_by_key_after_the_cache_grew(postgres_url: str, use_ledger) -> None:
    use_ledger(postgres_url)
    wanted = [f"{chunk}-{i}" for chunk in (3, 7) for i in range(12)]
    # A worker starts on an empty cache: its connection runs the lookup many times...
    for _ in range(10):
        with session_scope() as session:
            lookup(session, wanted)
    # ...and the cache grows as the batch runs, the lookups going on.
    for chunk in range(40):
        with session_scope() as session:
            store(session, [entry(f"{chunk}-{i}") for i in range(500)])
        with session_scope() as session:
            assert len(lookup(session, wanted)) == (
                len(wanted) if chunk >= 7 else 12 * (chunk >= 3)
            )
    with session_scope() as session:  # one transaction: its counts are not flushed between
        before = rows_scanned(session)
        for _ in range(20):
            assert len(lookup(session, wanted)) == len(wanted)
        scanned = rows_scanned(session) - before
    # By key: no lookup reads the 20,000 rows (a sequential scan reads them all, each time).
    assert scanned < 20_000, f"20 lookups read {scanned:,} rows by sequential scan"


def test_a_claim_reads_its_chunk_not_the_batch_just_submitted(
    postgres_url: str, use_ledger, tmp_path
) -> None:
    use_ledger(postgres_url)  # the broker: the default one, a folder in this test's home
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(f'{{"id": "T{i}", "text": "order {i} late"}}\n' for i in range(10_000))
    )
    submit_batch(items, "ticket_classification", config=ROUTING)
    with session_scope() as session:
        ids = list(session.scalars(text("SELECT id FROM items ORDER BY id DESC LIMIT 25")))
        tier = session.scalar(text("SELECT tier FROM items LIMIT 1"))
    with session_scope() as session:
        before = rows_read(session, "items")
        claimed = claim_items(session, ids, tier, token="chunk-1")
        read = rows_read(session, "items") - before
        assert {item.id for item in claimed} == set(ids)
        assert session.query(Item).filter(Item.state == "running").count() == 25
    assert read < 1_000, f"one claim of 25 items read {read:,} rows of the batch's 10,000"
