"""Engine and sessions for the ledger, and schema migration through Alembic."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ledger.errors import MIGRATIONS, migration_head, schema_error
from ledger.errors import LedgerSchemaError as LedgerSchemaError  # defined light, re-exported
from routing.settings import get_settings

log = logging.getLogger("batchrouter.ledger")
T = TypeVar("T")
_lock = threading.Lock()
_engines: dict[tuple[str, int], Engine] = {}


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Several worker processes write one file: wait for the lock instead of failing,
        # and let readers run beside the writer (WAL).
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (a forked child makes its own, never shares sockets)."""
    url = url or get_settings().resolved_database_url()
    key = (url, os.getpid())
    with _lock:
        if key not in _engines:
            engine = make_engine(url)
            check_schema(engine)
            _engines[key] = engine
        return _engines[key]


def check_schema(engine: Engine) -> None:
    """Fail with an instruction, not a 'no such column' error, when the ledger needs a migration.

    Runs once per engine in every process, `status` included, so it reads the revision table
    with one query and the head from the migration files' text, without loading Alembic (about
    a third of a CLI command's start-up)."""
    from sqlalchemy import inspect, text

    head = migration_head()
    with engine.connect() as connection:
        rows: list[str] = []
        if inspect(connection).has_table("alembic_version"):
            rows = list(connection.scalars(text("SELECT version_num FROM alembic_version")))
    current = rows[0] if len(rows) == 1 else (None if not rows else ", ".join(sorted(rows)))
    if current != head:
        raise schema_error(engine.url.render_as_string(hide_password=True), current, head)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = sessionmaker(get_engine(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or get_settings().resolved_database_url()))
    return config


def upgrade_schema(url: str | None = None) -> None:
    """Bring the ledger's schema to the newest migration (safe to run again)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


RETRYABLE_DB_ERRORS = (OperationalError, InterfaceError)


def with_db_retry(
    work: Callable[[], T], *, timeout: float = 120.0, first_delay: float = 0.2, what: str = "ledger"
) -> T:
    """Run `work` (which opens its own session) again while the database is unreachable.

    A PostgreSQL restart or a busy SQLite file should delay a worker, not lose its items:
    every write the worker makes is idempotent, so running it again is safe.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        try:
            return work()
        except DBAPIError as exc:
            retryable = isinstance(exc, RETRYABLE_DB_ERRORS) or exc.connection_invalidated
            if not retryable or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "%s write failed (%s); retrying in %.1f s", what, exc.__class__.__name__, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
