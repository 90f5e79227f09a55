from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from providers.fake_server import FakeServerConfig, running_fake_server

SDK_KEY = "sk-fake-sdk-key-123456"  # the key the SDK tests' servers require


@pytest.fixture()
def oai(url: str) -> openai.OpenAI:
    """The official OpenAI client on the module's `url` server, SDK retries off."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=SDK_KEY, max_retries=0)


@pytest.fixture()
def ant(url: str) -> anthropic.Anthropic:
    """The official Anthropic client on the module's `url` server, SDK retries off."""
    return anthropic.Anthropic(base_url=url, api_key=SDK_KEY, max_retries=0)


@pytest.fixture(scope="session")
def fake_url() -> Iterator[str]:
    """One fake provider on loopback for the session: no latency, no injected errors."""
    with running_fake_server(FakeServerConfig()) as url:
        yield url


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY"):
        monkeypatch.setenv(env, "sk-fake-key-for-tests-000000")
