"""The routing file: a good one loads; a broken one names the file, line and field path."""

from __future__ import annotations

import pytest

from routing.config import ConfigError, load_config, parse_config
from tests.conftest import EXAMPLES

GOOD = """\
deployments:
  cheap:
    provider: sim
    model: sim-cheap
    prices: {input: 0.1, output: 0.4}
    sim: {skill: 0.7}
  big:
    provider: sim
    model: sim-big
    prices: {input: 2.0, output: 8.0}
    sim: {skill: 0.95}
tiers:
  - name: t0
    deployments: [cheap]
  - name: t1
    deployments: [big]
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label: {text}"
    checks:
      - kind: label
        labels: [a, b]
"""


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLES / "routing.yaml")
    assert [t.name for t in config.tiers] == ["tier0", "tier1", "tier2"]
    assert set(config.task_types) == {"ticket_classification", "summarization"}
    assert config.task_types["ticket_classification"].labels[0] == "billing"


def test_a_good_config_resolves_tiers_and_prices() -> None:
    config = parse_config(GOOD)
    assert config.tier_by_ref(1).name == "t1"
    assert config.tier_by_ref("t0").deployments == ["cheap"]
    assert config.prices_for("big").output == 8.0


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (GOOD.replace("skill: 0.7", "skill: 1.7"), ":6: deployments.cheap.sim.skill"),
        (GOOD.replace("ladder: [t0, t1]", "ladder: [t0, t9]"), "unknown tier 't9'"),
        (GOOD.replace("ladder: [t0, t1]", "ladder: [t1, t0]"), "must climb the tiers in order"),
        (GOOD.replace("[big]", "[huge]"), "unknown deployment 'huge'"),
        (GOOD.replace('"Label: {text}"', '"Label"'), ":20: task_types.tickets.prompt"),
        (GOOD.replace("kind: label", "kind: lable"), ":22: task_types.tickets.checks.0"),
        (GOOD.replace("labels: [a, b]", "labels: []"), "task_types.tickets.checks.0.labels"),
        (
            GOOD.replace("prices: {input: 0.1, output: 0.4}", "prices: {input: 5000, output: 1}"),
            ":5: deployments.cheap.prices.input",
        ),
        ("deployments: [", "not valid YAML"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_a_broken_config_names_the_line_and_field(broken: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert expected in str(error.value)
    assert "rules.yaml" in str(error.value)


def test_a_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="nothere.yaml: routing file not found"):
        load_config(tmp_path / "nothere.yaml")


def test_unknown_task_type_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="tickets"):
        parse_config(GOOD).task_type("summaries")
