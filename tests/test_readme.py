"""The README's examples are real: its routing-file snippets load."""

from __future__ import annotations

import re

from routing.config import parse_config
from tests.conftest import ROOT

TASK = 'task_types:\n  t:\n    ladder: [tier0, tier1, tier2]\n    prompt: "{text}"\n'


def test_the_three_provider_ladder_in_the_readme_loads() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Real providers") :]
    snippet = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert snippet is not None
    config = parse_config(snippet.group(1) + TASK, "README.md")
    providers = {d.provider for d in config.deployments.values()}
    assert {"openai", "anthropic", "gemini"} <= providers
    for name in config.deployments:
        assert config.prices_for(name).input > 0
