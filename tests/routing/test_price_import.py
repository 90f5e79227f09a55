"""`prices import`: LiteLLM's price map -> a batchrouter price file, and the report of changes."""

from __future__ import annotations

import pytest

from routing.price_import import PROVIDERS, build_price_file, convert_litellm, trim_litellm
from routing.price_table import PriceTableError, parse_price_table

# Shaped like LiteLLM's entries (USD per token), with the quirks the importer must handle.
SOURCE = {
    "sample_spec": {"mode": "one of: chat, embedding", "input_cost_per_token": 0.0},
    "gpt-4o": {
        "litellm_provider": "openai",
        "mode": "chat",
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
        "input_cost_per_token_batches": 1.25e-06,
        "output_cost_per_token_batches": 5e-06,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "supports_vision": True,
    },
    "claude-sonnet-4-5": {
        "litellm_provider": "anthropic",
        "mode": "chat",
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "max_input_tokens": 200000,
    },
    "gemini/gemini-2.5-pro": {
        "litellm_provider": "gemini",
        "mode": "chat",
        "input_cost_per_token": 1.25e-06,
        "output_cost_per_token": 1e-05,
        "input_cost_per_token_above_200k_tokens": 2.5e-06,
        "output_cost_per_token_above_200k_tokens": 1.5e-05,
        "cache_read_input_token_cost_above_200k_tokens": 2.5e-07,
        "max_input_tokens": 1048576,
    },
    "deepseek/deepseek-chat": {
        "litellm_provider": "deepseek",
        "mode": "chat",
        "input_cost_per_token": 2.8e-07,
        "output_cost_per_token": 4.2e-07,
        "input_cost_per_token_cache_hit": 2.8e-08,
    },
    "azure/gpt-4o": {
        "litellm_provider": "azure",
        "mode": "chat",
        "input_cost_per_token": 2.75e-06,
        "output_cost_per_token": 1.1e-05,
    },
    "groq/openai/gpt-oss-120b": {
        "litellm_provider": "groq",
        "mode": "chat",
        "input_cost_per_token": 1.5e-07,
        "output_cost_per_token": 6e-07,
    },
    "wandb/absurd": {"litellm_provider": "groq", "mode": "chat"},
    "groq/absurd-qwen": {
        "litellm_provider": "groq",
        "mode": "chat",
        "input_cost_per_token": 0.01,  # $10,000 per 1M: a broken entry, as some maps carry
        "output_cost_per_token": 0.01,
    },
    "text-embedding-3-small": {
        "litellm_provider": "openai",
        "mode": "embedding",
        "input_cost_per_token": 2e-08,
        "output_cost_per_token": 0.0,
    },
    "bedrock/claude": {
        "litellm_provider": "bedrock",
        "mode": "chat",
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
    },
}


def _import(previous: dict | None = None, **kwargs: object) -> tuple[dict, object]:
    return build_price_file(SOURCE, previous, version="2026-11-30", source_name="test", **kwargs)


def test_fields_map_to_usd_per_million_exactly() -> None:
    data, _ = _import()
    models = data["models"]
    assert models["gpt-4o"] == {
        "provider": "openai",
        "input": 2.5,
        "output": 10.0,
        "cached_input": 1.25,
        "input_batch": 1.25,
        "output_batch": 5.0,
        "context_window": 128000,
        "max_output_tokens": 16384,
    }
    claude = models["claude-sonnet-4-5"]
    assert (claude["cache_write"], claude["cache_write_1h"], claude["cached_input"]) == (
        3.75,
        6.0,
        0.3,
    )
    pro = models["gemini-2.5-pro"]
    assert (pro["above_tokens"], pro["input_above"], pro["output_above"]) == (200000, 2.5, 15.0)
    assert pro["cached_input_above"] == 0.25
    assert models["deepseek-chat"]["cached_input"] == 0.028  # DeepSeek's own cache-hit field


def test_only_chat_models_of_our_providers_and_absurd_entries_named() -> None:
    models, rejected = convert_litellm(SOURCE)
    assert "text-embedding-3-small" not in models  # not chat
    assert "bedrock/claude" not in models and "claude" not in models  # bedrock: not ours
    reasons = dict(rejected)
    assert "implausible" in reasons["groq/absurd-qwen"]
    assert reasons["wandb/absurd"] == "no per-token input and output price"
    assert set(PROVIDERS.values()) >= {entry["provider"] for entry in models.values()}


def test_makers_own_bare_names_hosts_are_prefixed() -> None:
    data, _ = _import()
    table = parse_price_table(data)
    assert table.lookup("gpt-4o").input == 2.5
    assert table.lookup("gpt-4o", provider="azure_openai").input == 2.75
    assert table.lookup("openai/gpt-oss-120b").input == 0.15  # groq's, the only seller
    assert table.lookup("openai/gpt-oss-120b", provider="groq").input == 0.15
    # A provider without its own entry falls back to the maker's price.
    assert table.lookup("gpt-4o", provider="openrouter").input == 2.5
    batch = table.lookup("gpt-4o", batch=True)
    assert (batch.input, batch.output, batch.cached_input) == (1.25, 5.0, 0.625)
    assert table.lookup("claude-sonnet-4-5", batch=True).input == 1.5  # no own batch rates: x0.5
    assert table.context_window("gemini-2.5-pro") == 1048576
    assert table.context_window("deepseek-chat") is None


def test_report_says_what_changed_and_keeps_what_the_source_dropped() -> None:
    previous = {
        "version": "2026-11-28",
        "models": {
            "gpt-4o": {"provider": "openai", "input": 2.0, "output": 10.0, "aliases": ["my-4o"]},
            "claude-3-haiku": {"provider": "anthropic", "input": 0.25, "output": 1.25},
            "gpt-oss-120b": {
                "provider": "groq",
                "input": 0.15,
                "output": 0.6,
                "aliases": ["openai/gpt-oss-120b"],
            },
        },
    }
    data, report = _import(previous)
    assert ("gpt-4o", "input", 2.0, 2.5) in report.changed
    assert report.kept == ["claude-3-haiku"] and "claude-3-haiku" in data["models"]
    assert "claude-sonnet-4-5" in report.added and "gpt-4o" not in report.added
    table = parse_price_table(data)
    assert table.lookup("my-4o").input == 2.5  # an old alias still names the model
    assert table.lookup("gpt-oss-120b", provider="groq").input == 0.15
    assert report.version == "2026-11-30" and table.version == "2026-11-30"

    data, report = _import(previous, drop_missing=True)
    assert report.removed == ["claude-3-haiku"] and "claude-3-haiku" not in data["models"]


def test_trim_keeps_what_the_import_reads() -> None:
    trimmed = trim_litellm(SOURCE)
    assert "supports_vision" not in trimmed["gpt-4o"] and "bedrock/claude" not in trimmed
    assert convert_litellm(trimmed) == convert_litellm(SOURCE)


def test_a_source_that_is_not_a_price_map_is_refused() -> None:
    with pytest.raises(PriceTableError):
        convert_litellm(["not", "a", "map"])
