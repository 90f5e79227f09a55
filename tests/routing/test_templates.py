"""Prompt templates are plain {field} names (issue 13, section 3): everything else a Python
format string can do is refused when the routing file loads, with the line of its key, and again
when a worker renders, so a stored file edited in the ledger cannot use it either."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.readers import InputError
from producers.submit import submit_batch
from routing.config import ConfigError, parse_config
from routing.prompts import render_messages
from routing.templates import TemplateError, render, template_fields
from tests.routing.test_config import GOOD

# Each was accepted before: class names leaked into the prompt, module globals kept an item
# `running` for 75 minutes, a 500 MB pad crashed the tokenizer, an unclosed brace left the
# batch queued forever.
REFUSED = [
    ("{text.__class__.__mro__}", "only plain {name} fields"),
    ("{text.__init__.__globals__}", "only plain {name} fields"),
    ("{text[0]}", "only plain {name} fields"),
    ("{0} {text}", "only plain {name} fields"),
    ("{} {text}", "only plain {name} fields"),
    ("{text:>500000000}", "format specs (after ':') are not allowed"),
    ("{text!r}", "conversions (!r, !s, !a) are not allowed"),
    ("{unclosed {text}", "unbalanced braces"),
    ("{text} {unclosed", "unbalanced braces"),
    ("{text} }", "unbalanced braces"),
]


@pytest.mark.parametrize(("template", "message"), REFUSED)
def test_a_prompt_outside_the_rule_is_refused_at_load_with_its_line(
    template: str, message: str
) -> None:
    broken = GOOD.replace('"Label: {text}"', f"'{template}'")
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert "rules.yaml:20: task_types.tickets.prompt: " in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(("template", "message"), REFUSED)
def test_a_system_prompt_outside_the_rule_is_refused_at_load_with_its_line(
    template: str, message: str
) -> None:
    broken = GOOD.replace("    prompt:", f"    system_prompt: '{template}'\n    prompt:")
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert "rules.yaml:20: task_types.tickets.system_prompt: " in str(error.value)
    assert message in str(error.value)


def test_a_python_check_function_name_follows_the_same_rule() -> None:
    broken = GOOD.replace("kind: label", "kind: python\n        function: '{entry_point:>9}'")
    broken = broken.replace("        labels: [a, b]\n", "")
    with pytest.raises(ConfigError) as error:
        parse_config(broken, "rules.yaml")
    assert "rules.yaml:23: task_types.tickets.checks.0.function: " in str(error.value)
    assert "format specs" in str(error.value)


def test_braces_doubled_are_literal_and_values_are_never_formatted_again() -> None:
    config = parse_config(
        GOOD.replace('"Label: {text}"', '"Reply as {{\\"label\\": ...}} for {customer}: {text}"')
    )
    task = config.task_type("tickets")
    assert template_fields(task.prompt) == ["customer", "text"]
    [message] = render_messages(task, "{text.__class__} {{x}}", {"customer": "{labels}"})
    # The item's own braces are data: nothing in a value is looked up or formatted.
    assert message.content == 'Reply as {"label": ...} for {labels}: {text.__class__} {{x}}'


def test_labels_and_input_fields_fill_a_template() -> None:
    config = parse_config(
        GOOD.replace('"Label: {text}"', '"{labels} | {topic} | {text}"').replace(
            "    prompt:", "    system_prompt: 'Labels: {labels}'\n    prompt:"
        )
    )
    system, user = render_messages(config.task_type("tickets"), "hi", {"topic": "billing"})
    assert system.content == "Labels: a, b"
    assert user.content == "a, b | billing | hi"


def test_render_refuses_what_load_refuses_even_when_load_was_skipped() -> None:
    # A TaskType built without validation stands for a stored file that skipped the check.
    task = parse_config(GOOD).task_type("tickets").model_copy(update={"prompt": "{text.__class__}"})
    with pytest.raises(TemplateError, match="only plain"):
        render_messages(task, "hi")
    with pytest.raises(TemplateError, match="the item has no field 'x'"):
        render("{x}", {}, keep_missing=False)
    assert render("{x} {text}", {"text": "t"}) == "{x} t"


def test_submit_refuses_items_without_a_field_the_prompt_names(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD.replace('"Label: {text}"', '"{customer}: {text}"'))
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "a", "customer": "ACME"}\n{"text": "b", "custmer": "Initech"}\n')
    with pytest.raises(InputError) as error:
        submit_batch(items, "tickets", config=rules)  # fails before the ledger or the broker
    assert f"{items}:2: no field 'customer', which the prompt of task type 'tickets'" in str(
        error.value
    )
