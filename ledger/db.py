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
from sqlalchemy.orm import Session

from ledger.errors import MIGRATIONS, migration_head, schema_error
from ledger.errors import LedgerSchemaError as LedgerSchemaError  # defined light, re-exported
from routing.settings import get_settings

log = logging.getLogger("batchrouter.ledger")
T = TypeVar("T")
_lock = threading.Lock()
_engines: dict[tuple[str, int], Engine] = {}


# Execution option of a read-only session (session_scope(readonly=True)): on SQLite its
# transaction starts with a plain BEGIN, not BEGIN IMMEDIATE, so a long report does not hold
# the one write lock; any INSERT, UPDATE or DELETE in it fails (see _refuse_writes).
READONLY = "batchrouter_readonly"


def make_engine(
    url: str,
    *,
    busy_timeout_s: float = 60.0,
    pool_size: int = 10,
    max_overflow: int = 20,
    statement_timeout: bool = True,
) -> Engine:
    """An engine for `url`. PostgreSQL connections get the timeouts that make a dead network
    show within seconds (postgres_connect_args); `statement_timeout=False` for migrations,
    whose statements may legitimately run long."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
        _sqlite_transactions(engine, busy_timeout_s)
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args=postgres_connect_args(url, statement_timeout=statement_timeout),
        )
    event.listen(engine, "before_cursor_execute", _refuse_writes)
    return engine


def postgres_connect_args(url: str, *, statement_timeout: bool = True) -> dict[str, object]:
    """libpq parameters for a connection that notices a dead network (issue 18).

    Client side: connecting waits at most BATCHROUTER_DB_CONNECT_TIMEOUT_S; TCP keepalives
    probe an idle connection and tcp_user_timeout bounds data left unacknowledged, so a silent
    peer is dropped within about BATCHROUTER_DB_NETWORK_TIMEOUT_S instead of TCP's 15 minutes.
    Server side (`options`): the server drops a session whose client went silent the same way,
    ends a lock wait, a session idle inside a transaction (a cut-off worker's row locks would
    otherwise block the others) and an over-long statement. A parameter the URL sets itself
    (?connect_timeout=..., ?options=...) is left as the URL says."""
    from sqlalchemy.engine import make_url

    settings = get_settings()
    network_s = settings.db_network_timeout_s
    idle_s = max(1, int(network_s / 3))
    interval_s = max(1, int(network_s / 6))
    ours: dict[str, object] = {
        "connect_timeout": settings.db_connect_timeout_s,
        "keepalives": 1,
        "keepalives_idle": idle_s,
        "keepalives_interval": interval_s,
        "keepalives_count": 3,
        "tcp_user_timeout": int(network_s * 1000),
    }
    if settings.db_session_settings:
        server = {
            "tcp_keepalives_idle": idle_s,
            "tcp_keepalives_interval": interval_s,
            "tcp_keepalives_count": 3,
            "tcp_user_timeout": int(network_s * 1000),
            "lock_timeout": int(settings.db_lock_timeout_s * 1000),
            "idle_in_transaction_session_timeout": int(
                settings.db_idle_in_transaction_timeout_s * 1000
            ),
            "statement_timeout": int(settings.db_statement_timeout_s * 1000)
            if statement_timeout
            else 0,
            # psycopg prepares a statement on its fifth run; PostgreSQL then may keep a generic
            # plan chosen while a table was nearly empty. The claim's cache lookup became a
            # sequential scan of the whole response cache, every chunk (tests/ledger/
            # test_query_plans.py). A plan for each run's own parameters costs less than that.
            "plan_cache_mode": "force_custom_plan",
        }
        ours["options"] = " ".join(f"-c {name}={value}" for name, value in server.items())
    else:  # no startup options (PgBouncer): no prepared statements, so no generic plans either
        ours["prepare_threshold"] = None
    given = make_url(url).query
    return {name: value for name, value in ours.items() if name not in given}


def _sqlite_transactions(engine: Engine, busy_timeout_s: float) -> None:
    """Every write transaction on SQLite takes the database's write lock at its BEGIN.

    SQLite has no row locks: it accepts `SELECT ... FOR UPDATE` and locks nothing. Python's
    sqlite3 driver, left to itself, also sends BEGIN only before the first INSERT/UPDATE/
    DELETE, so a "read, check, then write" ran its read outside the transaction, and two
    processes could both pass the check (two pollers formed provider batches from the same
    staged items). With the driver's own BEGIN off and BEGIN IMMEDIATE sent by us, the read
    runs under the write lock: on SQLite every write transaction is serializable, which is
    what each FOR UPDATE in the ledger asks of PostgreSQL. Readers still read beside the
    writer (WAL), and a waiting BEGIN IMMEDIATE honours busy_timeout like any other write.
    (SQLAlchemy's SQLite dialect documents this recipe under "Serializable isolation".)
    """

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # the driver sends no BEGIN of its own
        cursor = dbapi_connection.cursor()
        # Several worker processes write one file: wait for the lock instead of failing,
        # and let readers run beside the writer (WAL).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
        readonly = connection.get_execution_options().get(READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def _refuse_writes(connection, _cursor, statement, _parameters, context, _executemany):  # type: ignore[no-untyped-def]
    """A write, or a locking read (FOR UPDATE), in a read-only session is a bug: on SQLite it
    would run without the write lock taken up front, and FOR UPDATE alone locks nothing there.
    Checked on PostgreSQL too, so its tests catch it as well."""
    if context is None or not connection.get_execution_options().get(READONLY, False):
        return
    compiled = getattr(context, "compiled", None)
    locking = getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is not None
    if context.isinsert or context.isupdate or context.isdelete or locking:
        raise ReadOnlySessionError(
            f"a write or locking read in a read-only session: {statement[:80]}"
        )


class ReadOnlySessionError(RuntimeError):
    """session_scope(readonly=True) was used for a write or a locking read."""


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
        connection.execution_options(**{READONLY: True})
        rows: list[str] = []
        if inspect(connection).has_table("alembic_version"):
            rows = list(connection.scalars(text("SELECT version_num FROM alembic_version")))
    current = rows[0] if len(rows) == 1 else (None if not rows else ", ".join(sorted(rows)))
    if current != head:
        raise schema_error(engine.url.render_as_string(hide_password=True), current, head)


@contextmanager
def session_scope(
    url: str | None = None, *, readonly: bool = False, engine: Engine | None = None
) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    On SQLite its transaction holds the database's write lock from the first statement to the
    commit (see _sqlite_transactions). Code that only reads (reports, status, lookups before
    a write of its own session) passes `readonly=True`: a plain BEGIN, a consistent snapshot,
    no write lock, and any write in it raises ReadOnlySessionError. `engine`: one of the
    caller's own (the lease heartbeat's) instead of the process's shared one for `url`.
    """
    engine = engine or get_engine(url)
    if readonly:
        engine = engine.execution_options(**{READONLY: True})
    # A plain Session, not `sessionmaker(...)()`: each sessionmaker makes a new Session
    # subclass, whose event dispatch SQLAlchemy then builds on first use (4% of a P1 worker's
    # CPU, three transactions a chunk).
    session = Session(engine, expire_on_commit=False)
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
