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
from dataclasses import dataclass
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
_INFO_FIELDS = ("provider", "aliases", "note")
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

    def lookup(self, model: str, *, batch: bool = False) -> Prices:
        key = _resolve(model, self.prices)
        if key is None:
            close = difflib.get_close_matches(model.lower(), list(self.prices), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(
                f"model {model!r} is not in the price table (version {self.version}){hint} "
                "Add `prices:` to its deployment in the routing file."
            )
        prices = self.prices[key]
        return scaled_prices(prices, self.batch_multiplier, "batch") if batch else prices

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
    unknown = set(entry) - set(_RATE_FIELDS) - set(_INFO_FIELDS) - {"above_tokens"}
    if unknown:
        raise PriceTableError(f"{source}: model {model!r}: unknown fields {sorted(unknown)}")
    for field in ("input", "output"):
        if field not in entry:
            raise PriceTableError(f"{source}: model {model!r}: missing {field!r} price")
    for field in _RATE_FIELDS:
        value = entry.get(field)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PriceTableError(f"{source}: model {model!r}: {field} must be a number")
        if value < 0 or value > MAX_PLAUSIBLE_PER_MTOK:
            raise PriceTableError(
                f"{source}: model {model!r}: {field} = {value} USD per 1M tokens is implausible "
                f"(allowed 0..{MAX_PLAUSIBLE_PER_MTOK:g}); is it a per-token figure or a typo?"
            )
    if entry.get("cached_input") is not None and entry["cached_input"] > entry["input"]:
        raise PriceTableError(
            f"{source}: model {model!r}: cached_input {entry['cached_input']} exceeds input "
            f"{entry['input']}"
        )
    fields = {k: v for k, v in entry.items() if k not in _INFO_FIELDS}
    return Prices(version=version, **fields)


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
    prices: dict[str, Prices] = {}
    canonical: dict[str, str] = {}
    for model, entry in data["models"].items():
        checked = _check_entry(source, model, entry, stamp)
        for name in [model, *entry.get("aliases", [])]:
            key = name.lower()
            if key in canonical and canonical[key] != model:
                raise PriceTableError(
                    f"{source}: {name!r} names both {canonical[key]!r} and {model!r}"
                )
            prices[key] = checked
            canonical[key] = model
    return PriceTable(version, float(multiplier), prices, canonical)


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
        )
    return table


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


def lookup_prices(model: str, *, batch: bool = False) -> Prices:
    """Prices of `model` from the table; KeyError naming the model when it is not there."""
    return price_table().lookup(model, batch=batch)
