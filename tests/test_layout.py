"""The repository's layout is the product's: the top-level packages the distribution installs,
where they import from, and the layer contracts that `make lint` runs over them."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def top_level_packages() -> list[str]:
    """The import packages the distribution declares (setuptools' find include, `name*`)."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(pattern.rstrip("*") for pattern in include)


def test_the_card_names_the_flow_at_the_top_level() -> None:
    names = top_level_packages()
    assert {"worker", "producers", "routing"} <= set(names)
    for name in names:
        assert (ROOT / name / "__init__.py").is_file(), f"{name}/ is not a package at the top"


def test_each_top_level_name_imports_from_this_project_and_this_distribution() -> None:
    owners = packages_distributions()
    for name in top_level_packages():
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert Path(module.__file__).resolve().is_relative_to(ROOT), (
            f"`import {name}` found {module.__file__}, not this project's {name}/"
        )
        assert set(owners.get(name, [])) == {"batchrouter"}, (
            f"{name} belongs to {owners.get(name)}, expected the batchrouter distribution only"
        )


def test_the_layer_contracts_cover_every_top_level_package() -> None:
    linter = PYPROJECT["tool"]["importlinter"]
    assert sorted(linter["root_packages"]) == top_level_packages()
    layered = {
        name.strip()
        for contract in linter["contracts"]
        if contract["type"] == "layers"
        for layer in contract["layers"]
        for name in layer.split("|")
    }
    assert layered == set(top_level_packages())
    acyclic = [c for c in linter["contracts"] if c["type"] == "acyclic_siblings"]
    assert acyclic and set(acyclic[0]["ancestors"]) == set(top_level_packages())


def test_a_broken_layer_is_reported_with_its_import_chain(tmp_path: Path) -> None:
    """The contracts really bite: a copy of the tree where routing imports the ledger fails
    `lint-imports`, and the report names the offending import."""
    import shutil

    for name in top_level_packages():
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "routing" / "sneaky.py"
    bad.write_text("from ledger.models import Item  # routing must not know the ledger\n")
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode != 0, result.stdout
    assert "routing.sneaky -> ledger.models" in result.stdout, result.stdout
