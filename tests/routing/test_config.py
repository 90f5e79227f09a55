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


# Issue 13, section 5: a strict routing file. Each of these loaded silently before, and submit
# returned 0: a typo'd `deferred` paid full price, a typo'd spend cap meant no cap.
@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace("    ladder: [t0, t1]\n", "    ladder: [t0, t1]\n    max_atempts: 3\n"),
            "rules.yaml:20: task_types.tickets.max_atempts: unknown key 'max_atempts'; "
            "did you mean 'max_attempts'?",
        ),
        (
            GOOD.replace(
                "    sim: {skill: 0.7}\n", "    sim: {skill: 0.7}\n    context_windw: 9\n"
            ),
            "rules.yaml:7: deployments.cheap.context_windw: unknown key 'context_windw'; "
            "did you mean 'context_window'?",
        ),
        (
            GOOD.replace("  - name: t1\n", "  - name: t1\n    defered: true\n"),
            "rules.yaml:16: tiers.1.defered: unknown key 'defered'; did you mean 'deferred'?",
        ),
        (
            GOOD.replace("    ladder: [t0, t1]\n", "    ladder: [t0, t1]\n    max_item_cost: 1\n"),
            "rules.yaml:20: task_types.tickets.max_item_cost: unknown key 'max_item_cost'; "
            "did you mean 'max_item_cost_usd'",
        ),
        (
            GOOD.replace("{input: 0.1, output: 0.4}", "{input: 0.1, output: 0.4, cached: 0.01}"),
            "rules.yaml:5: deployments.cheap.prices.cached: unknown key 'cached'",
        ),
        (
            GOOD.replace("sim: {skill: 0.7}", "sim: {skill: 0.7, latency: 5}"),
            "rules.yaml:6: deployments.cheap.sim.latency: unknown key 'latency'; "
            "did you mean 'latency_ms'",
        ),
        (
            GOOD.replace(
                "        labels: [a, b]\n", "        labels: [a, b]\n        lables: [c]\n"
            ),
            "rules.yaml:24: task_types.tickets.checks.0.lables: unknown key 'lables'; "
            "did you mean 'labels'?",
        ),
        (
            "taks_types: {}\n" + GOOD,
            "rules.yaml:1: taks_types: unknown key 'taks_types'; did you mean 'task_types'?",
        ),
        (
            GOOD.replace(
                "    deployments: [big]\n", "    deployments: [big]\n    batch: {colect_s: 1}\n"
            ),
            "rules.yaml:17: tiers.1.batch.colect_s: unknown key 'colect_s'; "
            "did you mean 'collect_s'?",
        ),
    ],
)
def test_an_unknown_key_anywhere_is_refused_with_did_you_mean(broken: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert expected in str(error.value)


def test_an_unknown_key_far_from_any_name_lists_the_known_ones() -> None:
    broken = GOOD.replace("  - name: t0\n", "  - name: t0\n    zzz: 1\n")
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert "rules.yaml:14: tiers.0.zzz: unknown key 'zzz'; known keys here: name, deployments" in (
        str(error.value)
    )


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace("    ladder: [t0, t1]\n", "    ladder: [t0, t1]\n    ladder: [t1]\n"),
            "rules.yaml:20: task_types.tickets.ladder: duplicate key (first given on line 19)",
        ),
        (
            GOOD.replace("sim: {skill: 0.7}", "sim: {skill: 0.7, skill: 0.1}"),
            "rules.yaml:6: deployments.cheap.sim.skill: duplicate key (first given on line 6)",
        ),
        (
            GOOD + "deployments: {}\n",
            "rules.yaml:24: deployments: duplicate key (first given on line 1)",
        ),
    ],
)
def test_a_duplicate_key_is_refused_with_both_lines(broken: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert expected in str(error.value)


BLOCK_LADDER = GOOD.replace("ladder: [t0, t1]", "ladder:\n      - t0\n      - t9")


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        # A bad tier in a ladder was reported at line 3 under "(top level)".
        (BLOCK_LADDER, "rules.yaml:21: task_types.tickets.ladder.1: task type 'tickets': unknown"),
        (
            GOOD.replace("    deployments: [big]", "    deployments:\n      - big\n      - huge"),
            "rules.yaml:18: tiers.1.deployments.1: tier 't1' names unknown deployment 'huge'",
        ),
        (
            GOOD.replace("  - name: t1\n", "  - name: t0\n"),
            "rules.yaml:15: tiers.1.name: tier name 't0' is used twice",
        ),
        (
            GOOD.replace("ladder: [t0, t1]", "ladder: [t1, t0]"),
            "rules.yaml:19: task_types.tickets.ladder: task type 'tickets': ladder",
        ),
        (
            GOOD.replace("ladder: [t0, t1]", "ladder: [t0, t1]\n    deferred: [t0, t2]"),
            "rules.yaml:20: task_types.tickets.deferred.1: task type 'tickets': deferred tier 't2'",
        ),
        (
            GOOD.replace("ladder: [t0, t1]", "ladder: [t0, t1]\n    deferred: [t0, 3, {a: 1}]"),
            "rules.yaml:20: task_types.tickets.deferred.2: Input should be a valid string",
        ),
    ],
)
def test_reference_errors_name_their_own_line(broken: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert expected in str(error.value)
    assert "(top level)" not in str(error.value)


def test_a_config_built_in_code_still_checks_its_references() -> None:
    import yaml

    from routing.config import RoutingConfig

    with pytest.raises(ValueError, match=r"task_types.tickets.ladder.1: .*unknown tier 't9'"):
        RoutingConfig.model_validate(yaml.safe_load(BLOCK_LADDER))
