"""Convert LiteLLM's community price map into a batchrouter price file, and say what changed.

LiteLLM publishes `model_prices_and_context_window.json` (MIT; a copy ships in the litellm
package as `model_prices_and_context_window_backup.json`): USD per token, keyed by model, with
`litellm_provider` and `mode`. `batchrouter prices import FILE` keeps the chat models of the
providers batchrouter calls, maps the fields below to USD per 1M tokens, and runs every entry
through the same validation as the shipped table, so an absurd entry (some list $10,000 per 1M)
is rejected and named instead of loaded.

Keys: the model id as the provider's API takes it (LiteLLM's key without its provider prefix).
The vendor that makes a model owns its bare name (`gpt-4o`, `claude-sonnet-4-5`,
`gemini-2.5-pro`, `deepseek-chat`); a model resold by a host is keyed `host/id`
(`azure_openai/gpt-4o`, `groq/openai/gpt-oss-120b`), with the bare id as an alias when no one
else claims it, so `lookup(model, provider=...)` finds the host's own price first.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from routing.price_table import PriceTableError, parse_price_table

# LiteLLM's provider name -> ours, in the order that decides who owns a bare model id. The first
# four make their own models; the rest host models made by others. Self-hosted servers (vllm,
# llamacpp, ollama) have no list price: their deployments give `prices:`.
PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "azure": "azure_openai",
}
MAKERS = ("openai", "anthropic", "gemini", "deepseek")

# our field -> LiteLLM's fields, first present wins (DeepSeek names its cache price apart)
_FIELDS: dict[str, tuple[str, ...]] = {
    "input": ("input_cost_per_token",),
    "output": ("output_cost_per_token",),
    "cached_input": ("cache_read_input_token_cost", "input_cost_per_token_cache_hit"),
    "cache_write": ("cache_creation_input_token_cost",),
    "cache_write_1h": ("cache_creation_input_token_cost_above_1hr",),
    "input_batch": ("input_cost_per_token_batches",),
    "output_batch": ("output_cost_per_token_batches",),
    "cached_input_batch": ("cache_read_input_token_cost_batches",),
}
_ABOVE = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
COMPARED = (*_FIELDS, "above_tokens", "input_above", "output_above", "context_window")


@dataclass
class ImportReport:
    """What an import did to the table it replaces; every list is sorted by model."""

    version: str
    models: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # in the old table, not in the source: kept
    changed: list[tuple[str, str, Any, Any]] = field(default_factory=list)  # model, field, old, new
    rejected: list[tuple[str, str]] = field(default_factory=list)  # source key, reason


def _per_million(value: Any) -> float | None:
    """USD per token -> USD per 1M tokens, exactly (Decimal from the text: 1.5e-07 -> 0.15)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(Decimal(str(value)) * 1_000_000)


def _entry(raw: dict[str, Any], provider: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"provider": provider}
    for ours, theirs in _FIELDS.items():
        for name in theirs:
            value = _per_million(raw.get(name))
            if value is not None:
                entry[ours] = value
                break
    # Long-context rates apply to the whole request past a prompt size; the table has one tier.
    thresholds = sorted(int(m.group(1)) for k in raw if (m := _ABOVE.match(k)))
    if thresholds:
        k = thresholds[0]
        entry["above_tokens"] = k * 1000
        for ours_above, base in (
            ("input_above", "input_cost_per_token"),
            ("output_above", "output_cost_per_token"),
            ("cached_input_above", "cache_read_input_token_cost"),
        ):
            value = _per_million(raw.get(f"{base}_above_{k}k_tokens"))
            if value is not None:
                entry[ours_above] = value
    for ours_size, size in (("context_window", "max_input_tokens"), ("max_output_tokens", "")):
        tokens = raw.get(size or ours_size)
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
            entry[ours_size] = tokens
    return entry


def convert_litellm(source: Any) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """The chat models of our providers as price-file entries, and the entries refused (with
    the reason). Each kept entry passed the table's plausibility check on its own."""
    if not isinstance(source, dict):
        raise PriceTableError("the LiteLLM price map is a JSON object keyed by model")
    rank = {ours: n for n, ours in enumerate(PROVIDERS.values())}
    found: list[tuple[int, str, str, dict[str, Any]]] = []
    rejected: list[tuple[str, str]] = []
    for key, raw in source.items():
        if not isinstance(raw, dict) or raw.get("mode") != "chat":
            continue
        provider = PROVIDERS.get(str(raw.get("litellm_provider")))
        if provider is None:
            continue
        if "input_cost_per_token" not in raw or "output_cost_per_token" not in raw:
            rejected.append((key, "no per-token input and output price"))
            continue
        model_id = key.removeprefix(f"{raw['litellm_provider']}/")
        entry = _entry(raw, provider)
        try:
            parse_price_table({"version": "check", "models": {key: entry}}, "source")
        except PriceTableError as exc:
            rejected.append((key, str(exc).split(": ", 2)[-1]))
            continue
        found.append((rank[provider], provider, model_id, entry))
    # A host gets the bare id as an alias only when no one else lists that id: which of two
    # hosts' prices a bare `openai/gpt-oss-120b` means is not ours to guess.
    sellers = Counter(model_id.lower() for _, _, model_id, _ in found)
    models: dict[str, dict[str, Any]] = {}
    claimed: set[str] = set()
    for _, provider, model_id, entry in sorted(found, key=lambda f: (f[0], f[2].lower())):
        bare = model_id.lower()
        name = model_id if provider in MAKERS and bare not in claimed else f"{provider}/{model_id}"
        if name.lower() in claimed:
            rejected.append((f"{provider}/{model_id}", "listed twice"))
            continue
        if name != model_id and bare not in claimed and sellers[bare] == 1:
            entry["aliases"] = [model_id]
            claimed.add(bare)
        claimed.add(name.lower())
        models[name] = entry
    return models, sorted(rejected)


def trim_litellm(source: dict[str, Any]) -> dict[str, Any]:
    """Only what `convert_litellm` reads: the chat entries of our providers, the mapped fields.
    The shipped source snapshot is this of LiteLLM's whole map (3.4 MB -> a few hundred kB)."""
    read = {"litellm_provider", "mode", "max_input_tokens", "max_output_tokens"}
    read |= {name for names in _FIELDS.values() for name in names}
    above = re.compile(
        r"^(input|output)_cost_per_token_above_\d+k_tokens$|^cache_read_input_token_cost_above_\d+k_tokens$"
    )
    return {
        key: {k: v for k, v in raw.items() if k in read or above.match(k)}
        for key, raw in source.items()
        if isinstance(raw, dict)
        and raw.get("mode") == "chat"
        and raw.get("litellm_provider") in PROVIDERS
    }


def _names(model: str, entry: dict[str, Any]) -> set[str]:
    return {model.lower(), *(alias.lower() for alias in entry.get("aliases", []))}


def merge(
    previous: dict[str, Any] | None,
    imported: dict[str, dict[str, Any]],
    *,
    drop_missing: bool = False,
) -> tuple[dict[str, dict[str, Any]], ImportReport]:
    """The new models mapping and what changed against `previous` (a price file's content).

    An old entry is the same model as a new one of the same provider when they share a name
    (`groq/` + its name counts). Its old names stay its names, as aliases of the new entry, even
    when the import gave one to another host, so a routing file that worked still prices the
    same deployment. An old entry the source no longer lists (a retired model, a vendor-page
    entry) is kept unless `drop_missing`, and reported either way.
    """
    report = ImportReport(version="")
    old_models: dict[str, dict[str, Any]] = dict((previous or {}).get("models", {}))
    models = copy.deepcopy(imported)
    index = {n: name for name, entry in models.items() for n in _names(name, entry)}
    matched: set[str] = set()
    for old_name, old in old_models.items():
        names = [old_name, *old.get("aliases", [])]
        provider = old.get("provider")
        keys = {n.lower() for n in names} | {f"{provider}/{n}".lower() for n in names if provider}
        hits = sorted(
            index[k]
            for k in keys
            if k in index and provider in (None, models[index[k]].get("provider"))
        )
        if not hits:
            (report.removed if drop_missing else report.kept).append(old_name)
            if not drop_missing:
                models[old_name] = old
            continue
        new_name = hits[0]
        matched.add(new_name)
        new = models[new_name]
        for original in names:
            key, holder = original.lower(), index.get(original.lower())
            if holder == new_name or (holder is not None and holder.lower() == key):
                continue  # already this entry's, or another model's own key
            if holder is not None:  # a host's bare alias: the old table's meaning wins
                aliases = models[holder]["aliases"]
                aliases[:] = [a for a in aliases if a.lower() != key]
                if not aliases:
                    del models[holder]["aliases"]
            new.setdefault("aliases", []).append(original)
            index[key] = new_name
        for name in COMPARED:
            if old.get(name) != new.get(name):
                report.changed.append((new_name, name, old.get(name), new.get(name)))
    report.added = sorted(set(imported) - matched)
    report.kept.sort()
    report.removed.sort()
    report.models = len(models)
    return models, report


def build_price_file(
    source: Any,
    previous: dict[str, Any] | None,
    *,
    version: str,
    source_name: str,
    drop_missing: bool = False,
) -> tuple[dict[str, Any], ImportReport]:
    """The whole new price file (validated as the table loader will read it) and the report."""
    imported, rejected = convert_litellm(source)
    models, report = merge(previous, imported, drop_missing=drop_missing)
    report.version, report.rejected = version, rejected
    data = {
        "version": version,
        "date": version,
        "unit": "USD per 1M tokens",
        "source": source_name,
        "batch_multiplier": (previous or {}).get("batch_multiplier", 0.5),
        "models": dict(sorted(models.items(), key=lambda m: (m[1].get("provider", ""), m[0]))),
    }
    parse_price_table(data, "imported prices")  # the result must load, or nothing is written
    return data, report


def dump_price_file(data: dict[str, Any]) -> str:
    """JSON with one model per line, so a price change is a one-line diff in review."""
    import json

    head = {k: v for k, v in data.items() if k != "models"}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append('  "models": {')
    rows = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in data["models"].items()]
    lines.append(",\n".join(rows))
    lines += ["  }", "}", ""]
    return "\n".join(lines)
