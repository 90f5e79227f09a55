"""`batchrouter prices import` on the shipped LiteLLM snapshot, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from providers.base import _FACTORIES
from routing.price_import import PROVIDERS
from tests.conftest import ROOT

DATA = ROOT / "routing" / "data"
SNAPSHOT = DATA / "litellm_prices.json"


def cli(*args: str, price_file: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BATCHROUTER_PRICE_FILE"}
    if price_file is not None:
        env["BATCHROUTER_PRICE_FILE"] = str(price_file)
    return subprocess.run(
        [sys.executable, "-m", "batchrouter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _import(out: Path, *extra: str) -> subprocess.CompletedProcess:
    shipped = json.loads((DATA / "prices.json").read_text())
    return cli(
        "prices",
        "import",
        str(SNAPSHOT),
        "--out",
        str(out),
        "--version",
        shipped["version"],
        "--source-name",
        shipped["source"],
        *extra,
    )


def test_the_shipped_table_is_what_import_makes_of_the_shipped_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "prices.json"
    out.write_text((DATA / "prices.json").read_text())
    result = _import(out)
    assert result.returncode == 0, result.stderr
    assert "added 0" in result.stdout and "changed 0 figures" in result.stdout
    # Byte for byte: nobody edited the shipped table by hand after importing.
    assert out.read_text() == (DATA / "prices.json").read_text()


def test_import_into_a_new_file_reports_against_the_built_in_table(tmp_path: Path) -> None:
    out = tmp_path / "new-prices.json"
    result = _import(out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] and report["models"] >= 300 and report["added"] == []
    data = json.loads(out.read_text())
    chat = [m for m in data["models"].values() if m["provider"] in PROVIDERS.values()]
    assert len(chat) >= 300
    # the rejected entries are named with their reason (routers and containers have no price)
    assert all(reason for _, reason in report["rejected"])


def test_the_imported_prices_are_used(tmp_path: Path) -> None:
    """A changed source figure reaches a lookup through BATCHROUTER_PRICE_FILE."""
    source = json.loads(SNAPSHOT.read_text())
    source["gpt-4o-mini"]["input_cost_per_token"] = 2e-07  # 0.15 -> 0.20 per 1M
    changed = tmp_path / "litellm.json"
    changed.write_text(json.dumps(source))
    out = tmp_path / "prices.json"
    result = cli("prices", "import", str(changed), "--out", str(out), "--version", "2027-01-01")
    assert result.returncode == 0, result.stderr
    assert "gpt-4o-mini input: 0.15 -> 0.2" in result.stdout
    assert "'input': 0.15" in cli("prices", "show", "gpt-4o-mini").stdout  # the built-in table
    shown = cli("prices", "show", "gpt-4o-mini", price_file=out)
    assert shown.returncode == 0, shown.stderr
    assert "'input': 0.2" in shown.stdout and "2027-01-01" in shown.stdout
    assert "context window: 128000" in shown.stdout


def test_a_broken_source_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = tmp_path / "prices.json"
    result = cli("prices", "import", str(bad), "--out", str(out))
    assert result.returncode == 2 and "bad.json" in result.stderr
    assert not out.exists()


def test_every_mapped_provider_is_one_batchrouter_calls() -> None:
    assert set(PROVIDERS.values()) <= set(_FACTORIES)
