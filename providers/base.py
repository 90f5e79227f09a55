"""The provider contract: one async function from a request to a result or a ProviderError.

Everything above this line (worker, replay, evaluation) sees only `Provider.complete`, so it can
be tested with the offline `sim` provider or a recorded table, without a network.
"""

from __future__ import annotations

from typing import Protocol

from routing.deployments import Deployment
from routing.types import CompletionRequest, CompletionResult


class Provider(Protocol):
    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        """Return the completion, or raise ProviderError with the failure classified."""
        ...


_FACTORIES: dict[str, str] = {
    # provider name -> "module:factory"; imported lazily so `sim` needs no httpx setup
    "sim": "providers.sim:SimProvider",
    "replay": "providers.replay:ReplayProvider",
    "openai": "providers.openai_compat:OpenAICompatProvider",
    "azure_openai": "providers.openai_compat:OpenAICompatProvider",
    "together": "providers.openai_compat:OpenAICompatProvider",
    "groq": "providers.openai_compat:OpenAICompatProvider",
    "fireworks": "providers.openai_compat:OpenAICompatProvider",
    "deepseek": "providers.openai_compat:OpenAICompatProvider",
    "openrouter": "providers.openai_compat:OpenAICompatProvider",
    "vllm": "providers.openai_compat:OpenAICompatProvider",
    "llamacpp": "providers.openai_compat:OpenAICompatProvider",
    "ollama": "providers.openai_compat:OpenAICompatProvider",
    "anthropic": "providers.anthropic:AnthropicProvider",
    "gemini": "providers.gemini:GeminiProvider",
}


def register_provider(name: str, target: str) -> None:
    """Make `provider: name` in the routing file resolve to `module:factory`."""
    _FACTORIES[name] = target


_INSTANCES: dict[str, Provider] = {}


def get_provider(name: str) -> Provider:
    """The process-wide provider instance for `name` (one pooled client per process)."""
    if name not in _INSTANCES:
        if name not in _FACTORIES:
            known = ", ".join(sorted(_FACTORIES))
            raise KeyError(f"unknown provider {name!r}; known providers: {known}")
        module_name, _, attr = _FACTORIES[name].partition(":")
        import importlib

        factory = getattr(importlib.import_module(module_name), attr)
        _INSTANCES[name] = factory()
    return _INSTANCES[name]


def known_providers() -> list[str]:
    return sorted(_FACTORIES)
