"""Shared fixtures: Redis and PostgreSQL servers, and real worker processes.

Redis: the suite starts a `redis-server` of its own (free port, temporary folder, nothing on
disk) once per run, and empties it before and after each test: it may, because it started it.
With BATCHROUTER_TEST_REDIS_URL the suite uses that server instead and never flushes it: it
claims an empty database there (the one the URL names if it is empty) and deletes only its own
keys. PostgreSQL: tests create a throwaway database on BATCHROUTER_TEST_POSTGRES_URL's server
(the machine's) and drop it afterwards. A test that stops or restarts a server starts its own
(tests/helpers/servers.py).

Tests that need a service fail when it is unreachable under CI=true and skip otherwise, so a
broken CI machine cannot pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.helpers.servers import (
    ClaimedDatabase,
    RedisServer,
    claim_empty_database,
    redis_server,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXTERNAL_REDIS_URL = os.environ.get("BATCHROUTER_TEST_REDIS_URL")
TEST_POSTGRES_ADMIN_URL = os.environ.get(
    "BATCHROUTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
NO_REDIS_URL = "redis://127.0.0.1:1/0"  # where the broker points when the suite has no Redis

os.environ.setdefault("BATCHROUTER_SIM_TIME_SCALE", "0.05")


class SuiteRedis:
    """The Redis of this run: a server the suite started, or a database it claimed on the
    server BATCHROUTER_TEST_REDIS_URL names. `error` says why there is none."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.error = ""
        self._stack = ExitStack()
        self._owned: RedisServer | None = None
        self._claimed: ClaimedDatabase | None = None

    def open(self) -> None:
        try:
            if EXTERNAL_REDIS_URL:
                self._claimed = claim_empty_database(EXTERNAL_REDIS_URL)
                self.url = self._claimed.url
            else:
                self._owned = self._stack.enter_context(redis_server())
                self.url = self._owned.url()
        except Exception as exc:  # no redis-server binary, an unreachable or full server, ...
            self.error = f"{EXTERNAL_REDIS_URL or 'redis-server'}: {exc}"

    def clean(self) -> None:
        """Empty it between tests: all of our own server, or our keys in the claimed database."""
        if self._owned is not None:
            self._owned.empty()
        elif self._claimed is not None:
            self._claimed.clean()

    def close(self) -> None:
        if self._claimed is not None:
            self._claimed.release()
        self._stack.close()


SUITE_REDIS = SuiteRedis()


def pytest_configure(config: pytest.Config) -> None:
    # The test process publishes to the same Redis the worker processes consume, so the broker
    # is fixed before any test module is imported (and builds the Celery app).
    SUITE_REDIS.open()
    os.environ["BATCHROUTER_BROKER_URL"] = SUITE_REDIS.url or NO_REDIS_URL
    # The rate limiter and deployment statistics fall back to the broker's Redis: a developer's
    # own settings for them must not send the tests' keys to another server.
    for name in ("BATCHROUTER_REDIS_URL", "BATCHROUTER_RATELIMIT_REDIS_URL"):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    SUITE_REDIS.close()


def _reachable(url: str) -> bool:
    parsed = urlparse(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), 2):
            return True
    except OSError:
        return False


def unavailable(message: str) -> None:
    """Fail under CI (a test that needs a service must not skip there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI=true: a test that needs it must not skip)")
    pytest.skip(message)


def require_service(name: str, url: str) -> None:
    if not _reachable(url):
        unavailable(f"{name} is not reachable at {url}")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The suite's Redis, empty; emptied again afterwards."""
    if SUITE_REDIS.url is None:
        unavailable(f"the tests have no Redis: {SUITE_REDIS.error}")
    assert SUITE_REDIS.url is not None
    require_service("Redis", SUITE_REDIS.url)
    SUITE_REDIS.clean()
    yield SUITE_REDIS.url
    SUITE_REDIS.clean()


def dispose_engines(url: str) -> None:
    """Close this process's pooled connections to `url` (before its database goes away)."""
    from ledger import db

    for key, engine in list(db._engines.items()):
        if key[0] == url:
            engine.dispose()
            del db._engines[key]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    require_service("PostgreSQL", TEST_POSTGRES_ADMIN_URL)
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    name = f"batchrouter_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(TEST_POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = TEST_POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    dispose_engines(url)
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
