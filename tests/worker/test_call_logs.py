"""Issue 19: a worker logs per chunk at INFO and per call at DEBUG; BATCHROUTER_LOG_CALLS=1
shows the per-call lines at INFO too (docs/operations.md, "Logs")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from routing.settings import Settings
from routing.types import ErrorClass, ProviderError
from tests.worker.test_deployment_stats import Scripted, config, item
from worker.app import CALLS_LOGGER, configure_call_logs
from worker.attempt import run_item

WATCHED = ("httpx",)


@pytest.fixture
def loggers() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in WATCHED}
    root = logging.getLogger().level
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().setLevel(root)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    from providers import base

    scripted = Scripted()
    monkeypatch.setitem(base._INSTANCES, "stats_scripted", scripted)
    yield scripted


def call_lines(caplog: pytest.LogCaptureFixture, provider: Scripted) -> list[str]:
    """Run one item that takes three calls (two 503s, then an answer); the per-call lines."""
    fail = ProviderError(ErrorClass.TRANSIENT, "HTTP 503", status_code=503)
    provider.scripts = {"a": [fail, fail, "billing"]}
    caplog.clear()

    async def no_sleep(_: float) -> None:
        return None

    outcome = asyncio.run(run_item(item(1), config(), "tickets", sleep=no_sleep))
    assert outcome.next_state == "succeeded"
    return [r.getMessage() for r in caplog.records if r.name == CALLS_LOGGER]


def test_info_has_no_per_call_lines_and_debug_has_one_per_call(
    loggers: None, provider: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger().setLevel(logging.INFO)
    configure_call_logs(Settings(log_calls=False), root_level=logging.INFO)
    caplog.set_level(logging.INFO)
    assert call_lines(caplog, provider) == []
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING  # its request line

    caplog.set_level(logging.DEBUG)  # --loglevel DEBUG
    lines = call_lines(caplog, provider)
    assert len(lines) == 3
    assert "attempt 1: a transient in" in lines[0] and "attempt 3: a answered in 250 ms" in lines[2]


def test_the_switch_shows_per_call_lines_at_info(
    loggers: None,
    provider: Scripted,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from routing.settings import get_settings

    logging.getLogger().setLevel(logging.INFO)
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("BATCHROUTER_LOG_CALLS", "1")
    get_settings.cache_clear()
    try:
        configure_call_logs(get_settings(), root_level=logging.INFO)
        assert len(call_lines(caplog, provider)) == 3
    finally:
        monkeypatch.delenv("BATCHROUTER_LOG_CALLS")
        get_settings.cache_clear()
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.INFO


def test_a_call_records_the_providers_latency_and_its_wait_in_the_worker_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 19: the ledger's latency was 2.5-3x the provider's, the worker's own queueing
    included. The provider reports 100 ms; a rate limiter holds the call 300 ms first."""
    from providers import base
    from routing.types import CompletionResult, Usage
    from worker.middleware import Middleware

    class Slow:
        async def complete(self, request, deployment):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.1)
            usage = Usage(input_tokens=10, output_tokens=1)
            return CompletionResult(text="billing", usage=usage, latency_ms=100.0)

    class Limiter(Middleware):
        async def before_call(self, ctx):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.3)
            return None

    monkeypatch.setitem(base._INSTANCES, "stats_scripted", Slow())
    outcome = asyncio.run(run_item(item(1), config(), "tickets", middleware=[Limiter()]))
    (record,) = outcome.attempts
    assert record.latency_ms == 100.0  # the provider's, as its client measured it
    assert record.queued_ms >= 300.0  # the limiter's hold, recorded apart
