"""Shared fixtures: the real Redis and PostgreSQL of this machine, and real worker processes.

Tests that need a service fail when it is unreachable under CI=true and skip otherwise, so a
broken CI machine cannot pass by skipping. Redis tests use a database of their own (15 unless
BATCHROUTER_TEST_REDIS_URL says otherwise); PostgreSQL tests create a throwaway database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TEST_REDIS_URL = os.environ.get("BATCHROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_POSTGRES_ADMIN_URL = os.environ.get(
    "BATCHROUTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# The test process publishes to the same Redis the worker processes consume, so the broker is
# fixed before anything builds the Celery app.
os.environ["BATCHROUTER_BROKER_URL"] = TEST_REDIS_URL
os.environ.setdefault("BATCHROUTER_SIM_TIME_SCALE", "0.05")


def _reachable(url: str) -> bool:
    parsed = urlparse(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), 2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str) -> None:
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI=true: a test that needs it must not skip)")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> Iterator[str]:
    require_service("Redis", TEST_REDIS_URL)
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    require_service("PostgreSQL", TEST_POSTGRES_ADMIN_URL)
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    name = f"batchrouter_test_{uuid.uuid4().hex[:10]}"
    # No pool: a fault test may restart PostgreSQL between creating and dropping the database.
    admin = create_engine(TEST_POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = TEST_POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from ledger import db

    for key, engine in list(db._engines.items()):
        if key[0] == url:
            engine.dispose()
            del db._engines[key]
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def use_ledger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point this process's settings at a ledger URL (and a private home folder)."""
    from routing.settings import get_settings

    def use(url: str) -> str:
        monkeypatch.setenv("BATCHROUTER_DATABASE_URL", url)
        monkeypatch.setenv("BATCHROUTER_HOME", str(tmp_path / "home"))
        get_settings.cache_clear()
        from ledger.db import upgrade_schema

        upgrade_schema(url)
        return url

    yield use
    get_settings.cache_clear()


CHECK_FIXTURES = "tests.routing.checkfixtures"  # the module tests name as custom checks/models


@pytest.fixture
def allow_checks(monkeypatch: pytest.MonkeyPatch):
    """Allow routing files to name these checks (BATCHROUTER_ALLOWED_CHECKS entries), in this
    process and in the worker processes it starts (they inherit the environment)."""
    from routing.settings import get_settings

    def allow(*entries: str) -> None:
        monkeypatch.setenv("BATCHROUTER_ALLOWED_CHECKS", ",".join(entries))
        get_settings.cache_clear()

    yield allow
    get_settings.cache_clear()


@pytest.fixture
def allow_checkfixtures(allow_checks) -> None:
    """Routing files may name anything defined in tests/routing/checkfixtures."""
    allow_checks(CHECK_FIXTURES)
