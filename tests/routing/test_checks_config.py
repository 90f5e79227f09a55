"""Every check kind loads from the routing file; a bad reference fails at load, naming the task
type, the check and the field; in the worker's loop a raising check fails the attempt only."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from ledger.outcomes import ClaimedItem
from providers import base
from routing.checks import CHECK_KINDS
from routing.config import ConfigError, parse_config
from routing.deployments import Deployment
from routing.types import CompletionRequest, CompletionResult, Usage
from worker.attempt import run_item

# Every routing file here may name the test fixtures as custom checks and models (the host
# allow-list, routing/checks/imports.py); tests/routing/test_allowlist.py runs without it.
pytestmark = pytest.mark.usefixtures("allow_checkfixtures")

HEAD = """\
deployments:
  a: {provider: canned, model: gpt-4o-mini, prices: {input: 1, output: 2}}
  b: {provider: canned, model: gpt-4o, prices: {input: 5, output: 10}}
tiers:
  - {name: t0, deployments: [a]}
  - {name: t1, deployments: [b]}
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Answer: {text}"
    checks:
"""


def load(checks: str):  # type: ignore[no-untyped-def]
    return parse_config(HEAD + checks, "rules.yaml")


def test_every_kind_loads_from_yaml(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object"}))
    config = load(
        f"""\
      - kind: non_empty
      - {{kind: label, labels: [a, b]}}
      - {{kind: length, unit: tokens, max: 50}}
      - {{kind: regex, pattern: "^[a-z]+$", match: full}}
      - {{kind: json, schema: {{type: object, required: [label]}}}}
      - {{kind: json, schema_file: {schema}}}
      - {{kind: json, model: "tests.routing.checkfixtures:Ticket"}}
      - {{kind: python, function: solve, args: 1}}
      - {{kind: logprob, measure: min, min_prob: 0.5, missing: pass}}
      - {{kind: consensus, k: 3, m: 2}}
      - {{kind: custom, function: "tests.routing.checkfixtures:mentions", options: {{word: x}}}}
      - {{kind: router_score, file: fitted/t.json, sha256: "{"0" * 64}", min_score: 0.5}}
"""
    )
    kinds = [check.kind for check in config.task_type("tickets").checks]
    assert set(kinds) == CHECK_KINDS
    assert len(kinds) == 12


@pytest.mark.parametrize(
    ("check", "where", "message"),
    [
        (
            '{kind: json, model: "tests.routing.checkfixtures:Nope"}',
            "rules.yaml:12: task_types.tickets.checks.0.model",
            "has no attribute 'Nope'",
        ),
        (
            '{kind: json, model: "tests.routing.checkfixtures.nope:Ticket"}',
            "rules.yaml:12: task_types.tickets.checks.0.model",
            "module 'tests.routing.checkfixtures.nope' failed to import",
        ),
        (
            '{kind: json, model: "tests.routing.checkfixtures:NOT_A_MODEL"}',
            "task_types.tickets.checks.0.model",
            "not a pydantic model class",
        ),
        (
            "{kind: json, schema_file: /no/such/schema.json}",
            "rules.yaml:12: task_types.tickets.checks.0.schema_file",
            "schema file '/no/such/schema.json' not found",
        ),
        (
            "{kind: json, schema: {type: 12}}",
            "task_types.tickets.checks.0.schema",
            "not a valid JSON Schema",
        ),
        (
            '{kind: custom, function: "tests.routing.checkfixtures:missing_fn"}',
            "rules.yaml:12: task_types.tickets.checks.0.function",
            "has no attribute 'missing_fn'",
        ),
        (
            '{kind: custom, function: "tests.routing.checkfixtures:NOT_A_MODEL"}',
            "task_types.tickets.checks.0.function",
            "not a function",
        ),
        (
            '{kind: custom, function: "nodots"}',
            "task_types.tickets.checks.0.function",
            "nor a dotted path",
        ),
        (
            '{kind: regex, pattern: "(a"}',
            "task_types.tickets.checks.0.pattern",
            "not a valid regular expression",
        ),
        ("{kind: logprob}", "task_types.tickets.checks.0", "exactly one threshold"),
        ("{kind: consensus, k: 3, m: 5}", "task_types.tickets.checks.0", "cannot exceed"),
        (
            "{kind: regex, pattern: a, patern: b}",
            "rules.yaml:12: task_types.tickets.checks.0.patern",
            "unknown key 'patern'; did you mean 'pattern'?",
        ),
        ("{kind: sentiment}", "task_types.tickets.checks.0", "does not match any of the expected"),
    ],
)
def test_bad_checks_fail_at_load_naming_task_type_and_field(
    check: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f"      - {check}\n")
    text = str(caught.value)
    assert where in text, text
    assert message in text, text


class Canned:
    """Answers every call with a fixed text and logprobs."""

    def __init__(self, text: str, logprobs: list[float] | None) -> None:
        self.text, self.logprobs = text, logprobs

    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        return CompletionResult(
            text=self.text,
            usage=Usage(input_tokens=100, output_tokens=5),
            token_logprobs=self.logprobs,
        )


def item() -> ClaimedItem:
    return ClaimedItem(
        id=1,
        batch_id="b",
        external_id="x1",
        text="refund me",
        expected=None,
        fields={"entry_point": "solve"},
        tier="t0",
        attempts=0,
        cost_usd=0.0,
        last_output=None,
        last_error=None,
    )


def run(monkeypatch: pytest.MonkeyPatch, checks: str, text: str, logprobs=None):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(base._INSTANCES, "canned", Canned(text, logprobs))
    return asyncio.run(run_item(item(), load(checks), "tickets"))


def test_a_raising_custom_check_fails_the_attempt_and_escalates(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    outcome = run(
        monkeypatch,
        '      - {kind: custom, function: "tests.routing.checkfixtures:explodes"}\n',
        "hi",
    )
    assert (outcome.next_state, outcome.next_tier) == ("queued", "t1")
    [record] = outcome.attempts
    assert record.outcome == "check_failed"
    assert "check raised ZeroDivisionError: odd output: hi" in record.verdicts[0]["reason"]
    assert "ZeroDivisionError" in (outcome.error or "")


def test_the_worker_passes_logprobs_and_fields_to_the_checks(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    confident = [math.log(0.95)]
    checks = "      - {kind: logprob, min_prob: 0.9}\n      - {kind: python, function: '{entry_point}'}\n"
    passed = run(monkeypatch, checks, "def solve(x):\n    return x", confident)
    assert passed.next_state == "succeeded", passed.error
    unsure = run(monkeypatch, checks, "def solve(x):\n    return x", [math.log(0.5)])
    assert unsure.next_state == "queued" and "p=0.500" in (unsure.error or "")
    blind = run(monkeypatch, checks, "def solve(x):\n    return x", None)
    assert blind.next_state == "queued" and "provider returned no logprobs" in (blind.error or "")
