"""One item on one tier, end to end over the provider contract (no network, no database).

A scripted provider plays each deployment's answers and failures, the way httpx's
MockTransport plays HTTP responses, so every row of docs/architecture.md's outcome table is exercised.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from ledger.outcomes import ClaimedItem
from providers import base
from routing.config import RoutingConfig, parse_config
from routing.deployments import Deployment
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    ProviderError,
    Usage,
)
from worker.attempt import run_item

CONFIG = """\
deployments:
  a: {provider: scripted, model: gpt-4o-mini, prices: {input: 1, output: 2}, context_window: 4000, max_output_tokens: 100}
  b: {provider: scripted, model: gpt-4o-mini, prices: {input: 3, output: 4}, max_output_tokens: 100}
  c: {provider: scripted, model: gpt-4o, prices: {input: 10, output: 20}, max_output_tokens: 100}
tiers:
  - {name: t0, deployments: [a, b]}
  - {name: t1, deployments: [c]}
task_types:
  tickets:
    ladder: [t0, t1]
    prompt: "Label this: {text}"
    checks: [{kind: label, labels: [billing, refund]}]
    max_attempts: 5
    transient_retries: 2
"""

Script = list[str | ProviderError | Exception]


class ScriptedProvider:
    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.calls: list[CompletionRequest] = []

    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        self.calls.append(request)
        step = self.scripts[request.deployment].pop(0)
        if isinstance(step, Exception):
            raise step
        return CompletionResult(text=step, usage=Usage(input_tokens=1000, output_tokens=10))


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedProvider]:
    scripted = ScriptedProvider()
    monkeypatch.setitem(base._INSTANCES, "scripted", scripted)
    yield scripted


@pytest.fixture
def config() -> RoutingConfig:
    return parse_config(CONFIG)


def item(
    text: str = "my card was charged twice", tier: str = "t0", attempts: int = 0
) -> ClaimedItem:
    return ClaimedItem(
        id=1,
        batch_id="b",
        external_id="T-1",
        text=text,
        expected=None,
        fields={},
        tier=tier,
        attempts=attempts,
        cost_usd=0.0,
        last_output=None,
        last_error=None,
    )


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def run(config: RoutingConfig, claimed: ClaimedItem, sleeps: Sleeps | None = None):
    return asyncio.run(
        run_item(claimed, config, "tickets", sleep=sleeps if sleeps is not None else Sleeps())
    )


def test_a_passing_answer_succeeds_on_the_cheapest_deployment(provider, config) -> None:
    provider.scripts = {"a": [" Billing. "]}
    outcome = run(config, item())
    assert (outcome.next_state, outcome.next_tier, outcome.output) == ("succeeded", "t0", "billing")
    [record] = outcome.attempts
    assert (record.attempt_no, record.deployment, record.outcome) == (1, "a", "passed")
    assert record.cost_usd == pytest.approx((1000 * 1 + 10 * 2) / 1e6)
    assert record.prices["input"] == 1 and record.verdicts[0]["passed"]


def test_a_failed_check_escalates_with_the_reason(provider, config) -> None:
    provider.scripts = {"a": ["no idea"]}
    outcome = run(config, item())
    assert (outcome.next_state, outcome.next_tier) == ("queued", "t1")
    assert "not one of the 2 labels" in (outcome.error or "")
    assert outcome.output == "no idea" and outcome.attempts[0].outcome == "check_failed"


def test_a_failed_check_on_the_last_tier_fails_the_item(provider, config) -> None:
    provider.scripts = {"c": ["still no idea"]}
    outcome = run(config, item(tier="t1", attempts=1))
    assert outcome.next_state == "failed"
    assert outcome.attempts[0].attempt_no == 2  # numbering continues across tiers
    assert outcome.output == "still no idea"  # the best output is kept for review


def test_transient_errors_retry_with_backoff_and_honour_retry_after(provider, config) -> None:
    billed = Usage(input_tokens=1000, output_tokens=0)
    provider.scripts = {
        "a": [
            ProviderError(ErrorClass.TRANSIENT, "HTTP 503", status_code=503, billed_usage=billed),
            ProviderError(ErrorClass.RATE_LIMITED, "HTTP 429", status_code=429, retry_after_s=7),
            "refund",
        ]
    }
    sleeps = Sleeps()
    outcome = run(config, item(), sleeps)
    assert outcome.next_state == "succeeded"
    assert [r.error_class for r in outcome.attempts] == ["transient", "rate_limited", None]
    assert 0 <= sleeps[0] <= 0.5 and sleeps[1] == 7
    assert outcome.attempts[0].cost_usd == pytest.approx(1000 / 1e6)  # billed failure is priced
    assert outcome.attempts[1].cost_usd == 0  # an unbilled 429 costs nothing


def test_transient_errors_past_the_retries_fall_back_to_the_next_deployment(
    provider, config
) -> None:
    error = ProviderError(ErrorClass.TRANSIENT, "HTTP 500", status_code=500)
    provider.scripts = {"a": [error, error, error], "b": ["billing"]}
    outcome = run(config, item())
    assert [r.deployment for r in outcome.attempts] == ["a", "a", "a", "b"]
    assert outcome.next_state == "succeeded" and outcome.deployment == "b"


def test_a_permanent_error_falls_back_at_once(provider, config) -> None:
    provider.scripts = {
        "a": [ProviderError(ErrorClass.PERMANENT, "HTTP 401 invalid key sk-abcdefghijklmnop")],
        "b": ["refund"],
    }
    outcome = run(config, item())
    assert [r.deployment for r in outcome.attempts] == ["a", "b"]
    assert "sk-abcdefghijklmnop" not in (outcome.attempts[0].error_message or "")
    assert "[REDACTED]" in (outcome.attempts[0].error_message or "")


def test_a_permanent_error_everywhere_fails_with_the_providers_words(provider, config) -> None:
    provider.scripts = {
        "a": [ProviderError(ErrorClass.PERMANENT, "model not found")],
        "b": [ProviderError(ErrorClass.PERMANENT, "quota exceeded")],
    }
    outcome = run(config, item())
    assert outcome.next_state == "failed"
    assert "quota exceeded" in (outcome.error or "")


def test_a_prompt_too_long_for_a_window_skips_that_deployment(provider, config) -> None:
    provider.scripts = {"b": ["billing"]}
    outcome = run(config, item(text="word " * 5000))  # ~5000 tokens > a's 4000-token window
    assert [r.deployment for r in outcome.attempts] == ["b"]
    assert provider.calls[0].deployment == "b"


def test_a_prompt_too_long_for_the_whole_tier_climbs_to_a_larger_model(provider) -> None:
    config = parse_config(
        CONFIG.replace(
            "b: {provider: scripted, model: gpt-4o-mini,",
            "b: {provider: scripted, model: gpt-4o-mini, context_window: 4000,",
        )
    )
    outcome = run(config, item(text="word " * 5000))
    assert (outcome.next_state, outcome.next_tier, outcome.attempts) == ("queued", "t1", [])
    assert "window" in (outcome.error or "")


def test_the_attempt_cap_stops_a_looping_item(provider, config) -> None:
    error = ProviderError(ErrorClass.TRANSIENT, "HTTP 500", status_code=500)
    provider.scripts = {"a": [error] * 3, "b": [error] * 3}
    outcome = run(config, item(attempts=1))
    assert len(outcome.attempts) == 4  # 1 earlier + 4 = the cap of 5
    assert outcome.next_state == "failed" and "attempt cap reached" in (outcome.error or "")


def test_a_crashing_provider_fails_the_item_and_never_raises(provider, config) -> None:
    provider.scripts = {"a": [RuntimeError("boom")]}
    outcome = run(config, item())
    assert outcome.next_state == "failed"
    assert outcome.attempts[0].error_class == "internal"
    assert "RuntimeError: boom" in (outcome.error or "")


def test_the_request_carries_the_rendered_prompt_and_item_meta(provider, config) -> None:
    provider.scripts = {"a": ["billing"]}
    run(config, item(text="double charge"))
    request = provider.calls[0]
    assert request.messages[-1].content == "Label this: double charge"
    assert request.meta.item_key == "T-1" and request.meta.labels == ["billing", "refund"]
    assert request.max_output_tokens == 100


CONSENSUS = CONFIG.replace(
    "checks: [{kind: label, labels: [billing, refund]}]",
    "checks: [{kind: label, labels: [billing, refund]}, {kind: consensus, k: 3, m: 2}]",
)


def test_consensus_accepts_when_m_of_k_samples_agree(provider) -> None:
    provider.scripts = {"a": ["Billing", "refund", "billing."]}
    outcome = run(parse_config(CONSENSUS), item())
    assert outcome.next_state == "succeeded" and outcome.output == "billing"
    assert [r.outcome for r in outcome.attempts] == ["passed", "sample", "sample"]
    assert sum(r.cost_usd for r in outcome.attempts) == pytest.approx(3 * (1000 + 20) / 1e6)


def test_consensus_escalates_when_the_samples_disagree(provider) -> None:
    provider.scripts = {"a": ["billing", "refund", "no idea"]}
    outcome = run(parse_config(CONSENSUS), item())
    assert (outcome.next_state, outcome.next_tier) == ("queued", "t1")
    assert "consensus" in (outcome.error or "")


def test_consensus_across_deployments(provider) -> None:
    config = parse_config(
        CONFIG.replace(
            "checks: [{kind: label, labels: [billing, refund]}]",
            "checks: [{kind: consensus, deployments: [a, b], m: 2}]",
        )
    )
    provider.scripts = {"a": ["refund"], "b": ["Refund!"]}
    outcome = run(config, item())
    assert outcome.next_state == "succeeded"
    assert [r.deployment for r in outcome.attempts] == ["a", "b"]


def test_consensus_naming_an_unknown_deployment_fails_at_load() -> None:
    from routing.config import ConfigError

    with pytest.raises(ConfigError, match="consensus names unknown deployment 'zz'"):
        parse_config(
            CONFIG.replace(
                "checks: [{kind: label, labels: [billing, refund]}]",
                "checks: [{kind: consensus, deployments: [a, zz], m: 2}]",
            )
        )


def test_a_recorded_cost_overrides_the_price_table(provider, config, monkeypatch) -> None:
    async def complete(request, deployment):
        return CompletionResult(
            text="billing", usage=Usage(input_tokens=10, output_tokens=1), cost_usd_override=0.5
        )

    monkeypatch.setattr(provider, "complete", complete)
    outcome = run(config, item())
    assert outcome.attempts[0].cost_usd == 0.5


def test_middleware_orders_deployments_and_sees_every_call(provider, config) -> None:
    from worker.middleware import Middleware

    seen: list[tuple[str, str]] = []

    class PreferB(Middleware):
        async def order(self, config, tier, names, prompt_tokens):
            return sorted(names, reverse=True)

        async def after_call(self, ctx, record, result):
            seen.append((ctx.deployment_name, record.outcome))

    provider.scripts = {"b": ["billing"]}
    outcome = asyncio.run(run_item(item(), config, "tickets", middleware=[PreferB()]))
    assert [r.deployment for r in outcome.attempts] == ["b"]
    assert seen == [("b", "error")] or seen[0][0] == "b"  # after_call runs before judging


def test_a_denied_call_parks_the_item_without_spending_an_attempt(provider, config) -> None:
    from worker.middleware import Denied, Middleware

    class NoBudget(Middleware):
        async def before_call(self, ctx):
            assert ctx.estimated_cost_usd > 0
            return Denied("budget exhausted", pause_batch=True)

    outcome = asyncio.run(run_item(item(), config, "tickets", middleware=[NoBudget()]))
    assert (outcome.next_state, outcome.next_tier, outcome.attempts) == ("queued", "t0", [])
    assert outcome.parked and outcome.pause_reason == "budget exhausted"
    assert provider.calls == []


def test_a_json_deployment_is_asked_for_the_json_checks_schema(provider) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    config = parse_config(
        CONFIG.replace(
            "max_output_tokens: 100}", "max_output_tokens: 100, json_output: true}", 1
        ).replace(
            "checks: [{kind: label, labels: [billing, refund]}]",
            "checks: [{kind: json, schema: " + json.dumps(schema) + "}]",
        )
    )
    provider.scripts = {"a": ['{"label": "billing"}']}
    outcome = run(config, item())
    assert outcome.next_state == "succeeded"
    assert provider.calls[0].json_schema == schema


def test_the_next_tier_can_see_the_rejected_answer_and_why(provider) -> None:
    config = parse_config(
        CONFIG.replace("max_attempts: 5", "max_attempts: 5\n    show_failed_output: true")
    )
    rejected = ClaimedItem(
        id=1, batch_id="b", external_id="T-1", text="charged twice", expected=None, fields={},
        tier="t1", attempts=1, cost_usd=0.0, last_output="no idea",
        last_error="label: 'no idea' is not one of the 2 labels",
    )  # fmt: skip
    provider.scripts = {"c": ["billing"]}
    run(config, rejected)
    prompt = provider.calls[0].messages[-1].content
    assert "not one of the 2 labels" in prompt and "no idea" in prompt
    provider.calls.clear()
    provider.scripts = {"c": ["billing"]}
    run(parse_config(CONFIG), rejected)  # the switch is off by default
    assert "no idea" not in provider.calls[0].messages[-1].content


@pytest.mark.parametrize("crash", [MemoryError("tokenizer tables"), RuntimeError("bad merge")])
def test_an_item_that_cannot_be_prepared_fails_with_the_reason(
    provider, config, monkeypatch, crash
) -> None:
    """A tokenizer crash or a memory error in one item ends that item, failed with the reason,
    within its claim; it is never left running to be claimed again and again."""
    import worker.attempt as attempt

    def explode(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise crash

    monkeypatch.setattr(attempt, "count_message_tokens", explode)
    outcome = run(config, item())
    assert (outcome.next_state, outcome.next_tier) == ("failed", "t0")
    assert f"could not run the item: {type(crash).__name__}" in (outcome.error or "")
    assert provider.calls == []


def test_a_judge_that_crashes_after_a_paid_call_keeps_the_call(
    provider, config, monkeypatch
) -> None:
    import worker.judging as judging

    def explode(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise MemoryError("checks")

    monkeypatch.setattr(judging, "judge", explode)
    provider.scripts = {"a": ["billing"]}
    outcome = run(config, item())
    assert outcome.next_state == "failed" and "MemoryError" in (outcome.error or "")
    [record] = outcome.attempts  # the paid call is recorded with its cost
    assert record.cost_usd > 0 and record.output == "billing"
