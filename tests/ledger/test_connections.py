"""Ledger connections that notice a dead network (issue 18), on a real PostgreSQL.

A worker cut off in the middle of a transaction leaves its row locks on the server; without a
limit the other workers' claims and writes of those rows wait for as long as the server keeps
the dead session (TCP's 15 minutes, or hours of idle keepalive). The server ends such a session
after BATCHROUTER_DB_IDLE_IN_TRANSACTION_TIMEOUT_S, and a lock wait after
BATCHROUTER_DB_LOCK_TIMEOUT_S.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from ledger.batches import register_batch
from ledger.db import make_engine, postgres_connect_args, session_scope
from ledger.models import Item
from routing.settings import get_settings
from routing.types import InputItem

pytestmark = pytest.mark.postgres


@pytest.fixture
def ledger(postgres_url: str, use_ledger, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BATCHROUTER_DB_IDLE_IN_TRANSACTION_TIMEOUT_S", "1")
    monkeypatch.setenv("BATCHROUTER_DB_LOCK_TIMEOUT_S", "0.5")
    url = use_ledger(postgres_url)
    with session_scope() as session:
        register_batch(
            session,
            items=[InputItem(external_id="x", text="t", line_no=1)],
            task_type="tickets",
            entry_tier="t0",
            config_yaml="{}",
            config_source="test",
        )
    return url


def test_a_session_left_in_a_transaction_frees_its_locks(ledger: str) -> None:
    stranded = make_engine(ledger)
    held = stranded.connect()
    held.begin()
    held.execute(select(Item.id).with_for_update())  # a worker cut off here holds the row
    try:
        # A writer waiting on the lock gives up after the lock timeout: a clear, retryable error
        with pytest.raises(OperationalError, match="lock timeout"), session_scope() as session:
            session.execute(update(Item).values(error="second"))
        time.sleep(1.5)  # the server ends the idle transaction, and its locks with it
        with session_scope() as session:
            session.execute(update(Item).values(error="third"))
    finally:
        held.invalidate()
        stranded.dispose()


def test_the_url_keeps_the_last_word(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    args = postgres_connect_args("postgresql+psycopg://u@h/db?connect_timeout=30")
    assert "connect_timeout" not in args  # the URL's own value stands
    assert args["keepalives"] == 1 and args["tcp_user_timeout"] == 15000
    assert "-c idle_in_transaction_session_timeout=60000" in str(args["options"])
    monkeypatch.setenv("BATCHROUTER_DB_SESSION_SETTINGS", "false")  # PgBouncer
    get_settings.cache_clear()
    assert "options" not in postgres_connect_args("postgresql+psycopg://u@h/db")
    get_settings.cache_clear()


def test_migrations_have_no_statement_timeout(ledger: str) -> None:
    engine = make_engine(ledger, statement_timeout=False)
    with engine.connect() as connection:
        assert connection.scalar(text("SHOW statement_timeout")) == "0"
    engine.dispose()
