"""Alembic environment: runs migrations against the URL given by batchrouter's settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event

from ledger.db import make_engine
from ledger.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = make_engine(url, statement_timeout=False)  # a migration may run long
    if engine.dialect.name == "sqlite":
        # Batch mode rebuilds a SQLite table (copy, drop, rename) to change a column's type;
        # with foreign keys on, dropping `batches` would cascade to every item and attempt
        # (migration 0009). The pragma only works outside a transaction: set it as each
        # connection opens, after make_engine's own connect hook turned it on.
        event.listen(engine, "connect", _foreign_keys_off)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
