"""The dated price table: coverage, validation at load, lookups, overrides."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from routing import price_table as pt
from routing.config import parse_config
from routing.prices import Prices, cost_usd
from routing.types import Usage


def _raw() -> dict:
    text = (Path(pt.__file__).parent / "data" / "prices.json").read_text()
    return json.loads(text)


def test_table_covers_300_chat_models_across_vendors() -> None:
    data = _raw()
    assert len(data["models"]) >= 300
    providers = Counter(entry["provider"] for entry in data["models"].values())
    for provider in ("openai", "anthropic", "gemini", "together", "groq", "deepseek"):
        assert providers[provider] >= 1, provider
    table = pt.load_price_table()
    assert table.version == data["version"] and table.version[:4].isdigit()


def test_lookup_stamps_version_and_handles_snapshots_and_prefixes() -> None:
    prices = pt.lookup_prices("gpt-4o-mini-2024-07-18")
    assert (prices.input, prices.output, prices.cached_input) == (0.15, 0.60, 0.075)
    assert prices.version.startswith("prices.json@")
    assert pt.lookup_prices("openai/gpt-4o").input == 2.5
    assert pt.lookup_prices("claude-3-7-sonnet-latest").cache_write == 3.75
    assert pt.lookup_prices("groq/llama-3.3-70b-versatile").output == 0.79
    # Together raised it from 0.88 (the hand table) to 1.04 (LiteLLM 1.110.2): see `prices import`
    assert pt.lookup_prices("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo").input == 1.04
    batch = pt.lookup_prices("gpt-4o", batch=True)
    assert (batch.input, batch.output) == (1.25, 5.0) and batch.version.endswith("+batch")


def test_unknown_model_is_an_error_never_zero() -> None:
    with pytest.raises(KeyError, match="gpt-4o-mni"):
        pt.lookup_prices("gpt-4o-mni")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input": 10000.0, "output": 1.0}, "implausible"),
        ({"input": -1, "output": 1.0}, "implausible"),
        ({"input": 1.0, "output": 0.002, "cached_input": 5.0}, "exceeds input"),
        ({"input": 1.0}, "missing 'output'"),
        ({"input": 1.0, "output": 1.0, "typo_field": 1}, "unknown fields"),
    ],
)
def test_implausible_prices_rejected_at_load(entry: dict, message: str) -> None:
    data = {"version": "2026-01-01", "models": {"bad-model": entry}}
    with pytest.raises(pt.PriceTableError, match=message) as info:
        pt.parse_price_table(data, "prices.json")
    assert "bad-model" in str(info.value)


def test_price_file_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "my-prices.json"
    extra.write_text(
        json.dumps(
            {
                "version": "local-1",
                "models": {
                    "gpt-4o": {"input": 2.0, "output": 8.0},
                    "my-llama": {"input": 0.1, "output": 0.1},
                },
            }
        )
    )
    monkeypatch.setenv(pt.PRICE_FILE_ENV, str(extra))
    pt.reset_price_table()
    try:
        assert pt.lookup_prices("gpt-4o").input == 2.0
        assert pt.lookup_prices("my-llama").version.endswith("@local-1")
        assert pt.lookup_prices("gpt-4o-mini").input == 0.15
    finally:
        monkeypatch.delenv(pt.PRICE_FILE_ENV)
        pt.reset_price_table()


def test_routing_file_prices_override_the_table() -> None:
    config = parse_config(
        """
deployments:
  cheap: {provider: openai, model: gpt-4o-mini}
  mine: {provider: openai, model: gpt-4o-mini, prices: {input: 1, output: 2}}
tiers:
  - {name: t1, deployments: [cheap, mine]}
task_types:
  x: {ladder: [t1], prompt: "{text}"}
"""
    )
    assert config.prices_for("cheap").input == 0.15
    assert (
        config.prices_for("mine").input == 1 and config.prices_for("mine").version == "routing-file"
    )


def test_cost_formula_worked_example() -> None:
    usage = Usage(input_tokens=4263, cached_input_tokens=4096, output_tokens=529)
    prices = Prices(input=0.15, output=0.60, cached_input=0.075)
    assert cost_usd(usage, prices) == pytest.approx((167 * 0.15 + 4096 * 0.075 + 529 * 0.6) / 1e6)
    assert cost_usd(Usage(), prices) == 0.0


def test_docs_ladder_example_is_a_valid_routing_file() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
    block = docs.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(block, "docs/providers.md")
    providers = {d.provider for d in config.deployments.values()}
    assert {"openai", "anthropic", "gemini"} <= providers
    for name in config.deployments:
        assert config.prices_for(name).input > 0


def test_a_deployment_without_a_window_gets_its_models_from_the_table() -> None:
    config = parse_config(
        """
deployments:
  pro: {provider: gemini, model: gemini-2.5-pro}
  old: {provider: openai, model: gpt-3.5-turbo}
  own: {provider: vllm, model: my-llama, prices: {input: 0.1, output: 0.1}}
  set: {provider: openai, model: gpt-4o, context_window: 5000}
tiers:
  - {name: t1, deployments: [pro, old, own, set]}
task_types:
  x: {ladder: [t1], prompt: "{text}"}
"""
    )
    windows = {name: d.context_window for name, d in config.deployments.items()}
    # LiteLLM's max_input_tokens; a model the table lacks keeps 128000; the file's own wins
    assert windows == {"pro": 1048576, "old": 16385, "own": 128000, "set": 5000}
