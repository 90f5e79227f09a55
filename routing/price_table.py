"""The built-in price table: a dated data file (routing/data/prices.json), loaded once.

Prices change and public price maps contain absurd entries, so the file is validated at load:
a negative price or one above MAX_PLAUSIBLE_PER_MTOK ($1000 per 1M tokens) stops the load with
an error naming the model and field. An unknown model is a KeyError, never a silent $0.

Users override per deployment (`prices:` in the routing file) or point BATCHROUTER_PRICE_FILE at
a file of the same format; its entries replace or add to the built-in ones.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing.prices import MAX_PLAUSIBLE_PER_MTOK, Prices, scaled_prices

PRICE_FILE_ENV = "BATCHROUTER_PRICE_FILE"
_RATE_FIELDS = (
    "input",
    "output",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "input_above",
    "output_above",
    "cached_input_above",
)
# Provider batch-API rates (`prices import` maps LiteLLM's `*_batches`); a model without them
# is billed batch_multiplier x its immediate rates.
BATCH_FIELDS = {
    "input_batch": "input",
    "output_batch": "output",
    "cached_input_batch": "cached_input",
}
_INFO_FIELDS = ("provider", "aliases", "note", "context_window", "max_output_tokens")
# Snapshot suffixes that do not change the price: -2024-07-18, -20250219, -latest, -001.
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|-\d{3})$")


class PriceTableError(ValueError):
    """The price file cannot be used; the message names the file, the model and the field."""


@dataclass(frozen=True)
class PriceTable:
    version: str
    batch_multiplier: float
    prices: dict[str, Prices]  # lower-cased model name or alias -> prices
    canonical: dict[str, str]  # lower-cased model name or alias -> the file's model name
    # lower-cased name -> the provider's own batch rates, where the file has them
    batch_prices: dict[str, Prices] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)  # lower-cased name -> context window

    def lookup(self, model: str, *, batch: bool = False, provider: str | None = None) -> Prices:
        """Prices of `model`; with `provider`, that provider's entry (`groq/...`) comes first,
        because one model id can be sold by several providers at different prices."""
        key = _resolve(f"{provider}/{model}" if provider else model, self.prices)
        if key is None:
            close = difflib.get_close_matches(model.lower(), list(self.prices), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(
                f"model {model!r} is not in the price table (version {self.version}){hint} "
                "Add `prices:` to its deployment in the routing file."
            )
        prices = self.prices[key]
        if not batch:
            return prices
        if key in self.batch_prices:
            return self.batch_prices[key]
        return scaled_prices(prices, self.batch_multiplier, "batch")

    def context_window(self, model: str, provider: str | None = None) -> int | None:
        """The model's input window from the file, or None when the file does not say."""
        key = _resolve(f"{provider}/{model}" if provider else model, self.prices)
        return None if key is None else self.windows.get(key)

    def models(self) -> list[str]:
        return sorted(set(self.canonical.values()))


def _resolve(model: str, table: dict[str, Prices]) -> str | None:
    """Exact name, then without a provider prefix ("openai/", "groq/", "models/"), then without
    a snapshot date. Together ids contain a slash themselves, so prefixes are peeled one by one."""
    name = model.strip().lower()
    parts = name.split("/")
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        for form in (candidate, _SNAPSHOT.sub("", candidate)):
            if form in table:
                return form
    return None


def _check_entry(source: str, model: str, entry: Any, version: str) -> Prices:
    if not isinstance(entry, dict):
        raise PriceTableError(f"{source}: model {model!r}: expected an object with prices")
    unknown = set(entry) - set(_RATE_FIELDS) - set(_INFO_FIELDS) - set(BATCH_FIELDS)
    unknown -= {"above_tokens"}
    if unknown:
        raise PriceTableError(f"{source}: model {model!r}: unknown fields {sorted(unknown)}")
    for name in ("input", "output"):
        if name not in entry:
            raise PriceTableError(f"{source}: model {model!r}: missing {name!r} price")
    for name in (*_RATE_FIELDS, *BATCH_FIELDS):
        value = entry.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PriceTableError(f"{source}: model {model!r}: {name} must be a number")
        if value < 0 or value > MAX_PLAUSIBLE_PER_MTOK:
            raise PriceTableError(
                f"{source}: model {model!r}: {name} = {value} USD per 1M tokens is implausible "
                f"(allowed 0..{MAX_PLAUSIBLE_PER_MTOK:g}); is it a per-token figure or a typo?"
            )
    for cached, base in (("cached_input", "input"), ("cached_input_batch", "input_batch")):
        limit = entry.get(base, entry["input"])
        if entry.get(cached) is not None and entry[cached] > limit:
            raise PriceTableError(
                f"{source}: model {model!r}: {cached} {entry[cached]} exceeds {base} {limit}"
            )
    for name in ("context_window", "max_output_tokens"):
        value = entry.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise PriceTableError(f"{source}: model {model!r}: {name} must be a positive integer")
    fields = {k: v for k, v in entry.items() if k not in _INFO_FIELDS and k not in BATCH_FIELDS}
    return Prices(version=version, **fields)


def _batch_entry(checked: Prices, entry: dict[str, Any], multiplier: float) -> Prices | None:
    """The provider's own batch rates over the multiplied ones, or None when it lists none."""
    own = {BATCH_FIELDS[k]: v for k, v in entry.items() if k in BATCH_FIELDS}
    if not own:
        return None
    scaled = scaled_prices(checked, multiplier, "batch").model_dump()
    return Prices.model_validate({**scaled, **own})


def parse_price_table(data: Any, source: str = "prices.json") -> PriceTable:
    """Validate a price file's content (already JSON-decoded) and index it by name and alias."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceTableError(f"{source}: expected an object with a 'models' mapping")
    version = str(data.get("version") or data.get("date") or "")
    if not version:
        raise PriceTableError(f"{source}: the price file needs a 'version' (its date)")
    multiplier = data.get("batch_multiplier", 0.5)
    if not isinstance(multiplier, int | float) or not 0 < multiplier <= 1:
        raise PriceTableError(f"{source}: batch_multiplier must be in (0, 1], got {multiplier!r}")
    stamp = f"prices.json@{version}" if source.endswith("prices.json") else f"{source}@{version}"
    table = PriceTable(version, float(multiplier), {}, {})
    for model, entry in data["models"].items():
        checked = _check_entry(source, model, entry, stamp)
        batch = _batch_entry(checked, entry, float(multiplier))
        for name in [model, *entry.get("aliases", [])]:
            key = name.lower()
            if key in table.canonical and table.canonical[key] != model:
                raise PriceTableError(
                    f"{source}: {name!r} names both {table.canonical[key]!r} and {model!r}"
                )
            table.prices[key] = checked
            table.canonical[key] = model
            if batch is not None:
                table.batch_prices[key] = batch
            if entry.get("context_window"):
                table.windows[key] = entry["context_window"]
    return table


def _read(path: Path | None) -> tuple[Any, str]:
    if path is None:
        text = (importlib.resources.files("routing") / "data" / "prices.json").read_text()
        return json.loads(text), "prices.json"
    try:
        return json.loads(path.read_text()), str(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise PriceTableError(f"{path}: cannot read price file: {exc}") from exc


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The built-in table, merged with BATCHROUTER_PRICE_FILE (or `path`) when given."""
    data, source = _read(None)
    table = parse_price_table(data, source)
    extra = path or os.environ.get(PRICE_FILE_ENV)
    if extra:
        override = parse_price_table(*_read(Path(extra)))
        table = PriceTable(
            version=f"{table.version}+{override.version}",
            batch_multiplier=override.batch_multiplier,
            prices={**table.prices, **override.prices},
            canonical={**table.canonical, **override.canonical},
            batch_prices=_merge_by_name(table.batch_prices, override.prices, override.batch_prices),
            windows=_merge_by_name(table.windows, override.prices, override.windows),
        )
    return table


def _merge_by_name(base: dict[str, Any], names: dict[str, Prices], own: dict[str, Any]) -> dict:
    """`base` for the models the override file does not name, `own` for those it does: an
    override entry without batch rates or a window must not inherit the built-in ones."""
    return {**{k: v for k, v in base.items() if k not in names}, **own}


_lock = threading.Lock()
_table: PriceTable | None = None


def price_table() -> PriceTable:
    """The process-wide table, loaded on first use."""
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = load_price_table()
    return _table


def reset_price_table() -> None:
    """Forget the loaded table (tests, or after changing BATCHROUTER_PRICE_FILE)."""
    global _table
    with _lock:
        _table = None


def lookup_prices(model: str, *, batch: bool = False, provider: str | None = None) -> Prices:
    """Prices of `model` from the table; KeyError naming the model when it is not there."""
    return price_table().lookup(model, batch=batch, provider=provider)
