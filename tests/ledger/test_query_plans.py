"""Statements a worker repeats keep reading by index as the ledger grows (PostgreSQL).

psycopg prepares a statement the fifth time a connection runs it, and PostgreSQL may then keep
a generic plan chosen while the table was nearly empty: a sequential scan. The cache lookup of
every chunk's claim did that, and read the whole response cache each time: 2.3 million rows
for 20,000 items, the worker's PostgreSQL time per item doubling as the cache grew. Workers'
connections plan each run for its own parameters (plan_cache_mode, ledger/db.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger.cache import CacheEntry, lookup, store
from ledger.db import session_scope

pytestmark = pytest.mark.postgres


def entry(key: str) -> CacheEntry:
    return CacheEntry(key, "default", "d", "m", "billing", None, 0.001, "b/1/1", 3600.0)


def rows_scanned(session) -> int:  # type: ignore[no-untyped-def]
    """Rows this backend read from response_cache by sequential scan, of the counts it has not
    yet flushed to the statistics (so: compare two readings within one transaction)."""
    found = session.execute(
        text("SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'response_cache'")
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
