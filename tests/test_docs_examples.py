"""Every routing-file example in README.md and docs/ loads under the strict schema: unknown and
duplicate keys, templates and named checks included. A snippet shows only the part it is about,
so the sections it leaves out are filled with the least that makes a file; the keys it shows are
checked as written. The custom check and model the docs name (`myapp...`) are made importable
and allowed, as docs/checks.md tells a user to."""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from routing.config import parse_config
from routing.yamlfile import load_yaml_with_lines
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROUTING_KEYS = {"deployments", "tiers", "task_types"}
FILLER = {"provider": "openai", "model": "gpt-4o-mini"}
# Blocks that are not routing files: the fake provider server's configuration.
NOT_ROUTING = {("docs/providers.md", 2), ("docs/providers.md", 3)}

MYAPP = {
    "myapp/__init__.py": "",
    "myapp/checks.py": (
        "def mentions_order_id(output, source, prefix='ORD-'):\n"
        "    found = prefix in output\n"
        "    return found, 'mentions an order id' if found else f'no {prefix} id in the answer'\n"
    ),
    "myapp/schemas.py": (
        "from pydantic import BaseModel\n\n\n"
        "class Ticket(BaseModel):\n    label: str\n    priority: int\n"
    ),
    "myapp_checks-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: myapp-checks\nVersion: 1.0\n",
    "myapp_checks-1.0.dist-info/entry_points.txt": (
        "[batchrouter.checks]\norder_id = myapp.checks:mentions_order_id\n"
        "ticket = myapp.schemas:Ticket\n"
    ),
    "schemas/ticket.schema.json": '{"type": "object"}',
}


def yaml_blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            found.append((str(path.relative_to(ROOT)), number, textwrap.dedent(block)))
    return found


def as_routing_file(data: Any) -> dict[str, Any] | None:
    """The snippet as (part of) a routing file, or None when it is something else."""
    if isinstance(data, list) and all(isinstance(c, dict) and "kind" in c for c in data):
        return {"task_types": {"t": {"checks": data}}}  # a list of checks
    if not isinstance(data, dict):
        return None
    if set(data) & ROUTING_KEYS:
        return copy.deepcopy(data)
    if all(isinstance(v, dict) and "provider" in v for v in data.values()):
        return {"deployments": data}  # a fragment of `deployments:`
    return None


def completed(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the sections the snippet leaves out; keep every key it shows."""
    task_types = data.setdefault("task_types", {})
    if "tiers" not in data:
        ladders = [
            rung["tier"] if isinstance(rung, dict) else rung  # a rung: a name or {tier, accept}
            for task in task_types.values()
            for rung in task.get("ladder", [])
        ]
        data["tiers"] = [{"name": n, "deployments": ["filler"]} for n in dict.fromkeys(ladders)]
        data["tiers"] = data["tiers"] or [{"name": "tier0", "deployments": ["filler"]}]
    deployments = data.setdefault("deployments", {})
    named = [n for tier in data["tiers"] for n in tier["deployments"]]
    for task in task_types.values():
        for check in task.get("checks", []):
            named += check.get("deployments", [])
    for name in named:
        deployments.setdefault(name, dict(FILLER))
    if not task_types:
        task_types["t"] = {}
    for task in task_types.values():
        task.setdefault("ladder", [tier["name"] for tier in data["tiers"]])
        task.setdefault("prompt", "{text}")
    return data


@pytest.fixture
def myapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow_checks) -> None:  # type: ignore[no-untyped-def]
    for name, text in MYAPP.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # schema_file paths are relative to the working directory
    allow_checks("myapp.checks", "myapp.schemas:Ticket")  # as docs/checks.md shows


@pytest.mark.parametrize(
    ("doc", "number", "block"), [pytest.param(*b, id=f"{b[0]}:{b[1]}") for b in yaml_blocks()]
)
def test_every_routing_example_in_the_docs_loads_strictly(
    myapp: None, doc: str, number: int, block: str
) -> None:
    load_yaml_with_lines(block)  # duplicate keys are refused here
    data = as_routing_file(yaml.safe_load(block))
    if data is None:
        assert (doc, number) in NOT_ROUTING, f"{doc} block {number} is not a routing file"
        return
    assert (doc, number) not in NOT_ROUTING
    parse_config(yaml.safe_dump(completed(data), sort_keys=False), f"{doc} block {number}")


def test_the_docs_have_routing_examples_to_check() -> None:
    blocks = yaml_blocks()
    routing = [b for b in blocks if as_routing_file(yaml.safe_load(b[2])) is not None]
    assert len(routing) >= 15 and len(blocks) == len(routing) + len(NOT_ROUTING)
