from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.fake_server import FakeServerConfig, running_fake_server


@pytest.fixture(scope="session")
def fake_url() -> Iterator[str]:
    """One fake provider on loopback for the session: no latency, no injected errors."""
    with running_fake_server(FakeServerConfig()) as url:
        yield url


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY"):
        monkeypatch.setenv(env, "sk-fake-key-for-tests-000000")
