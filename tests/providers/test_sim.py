"""The offline sim provider: deterministic, right about `skill` of the time, realistic usage."""

from __future__ import annotations

import asyncio

from providers.sim import SimProvider
from routing.deployments import Deployment
from routing.prices import Prices
from routing.types import CompletionRequest, Message, RequestMeta

LABELS = ["billing", "refund_request", "shipping_delay"]


def deployment(skill: float) -> Deployment:
    return Deployment(
        provider="sim",
        model=f"sim-{skill}",
        prices=Prices(input=1, output=2),
        sim={"skill": skill, "latency_ms": 100},
    )


def ask(dep: Deployment, key: str, expected: str | None = "billing", text: str = "Ticket: x"):
    request = CompletionRequest(
        deployment="d",
        model=dep.model,
        messages=[Message(role="user", content=text)],
        meta=RequestMeta(item_key=key, expected=expected, labels=LABELS),
    )
    return asyncio.run(SimProvider(time_scale=0).complete(request, dep))


def test_the_same_item_gets_the_same_answer() -> None:
    dep = deployment(0.6)
    first = [ask(dep, f"k{i}") for i in range(20)]
    again = [ask(dep, f"k{i}") for i in range(20)]
    assert [r.text for r in first] == [r.text for r in again]
    assert [r.latency_ms for r in first] == [r.latency_ms for r in again]


def test_skill_is_the_share_of_right_answers() -> None:
    for skill in (0.5, 0.9):
        dep = deployment(skill)
        right = sum(ask(dep, f"k{i}").text.replace(" ", "_") == "billing" for i in range(2000))
        assert abs(right / 2000 - skill) < 0.04


def test_usage_counts_the_prompt_and_the_answer() -> None:
    short = ask(deployment(1.0), "k", text="hi")
    long = ask(deployment(1.0), "k", text="word " * 400)
    assert long.usage.input_tokens > short.usage.input_tokens + 300
    assert short.usage.output_tokens >= 1


def test_free_text_answers_are_extracts_or_bad_outputs() -> None:
    document = "Summarize.\n\nThe release shipped on Monday. Three bugs were fixed. Users liked it."
    right = ask(deployment(1.0), "d1", expected=None, text=document)
    assert right.text.startswith("The release shipped on Monday.")
    wrong = {ask(deployment(0.0), f"d{i}", expected=None, text=document).text for i in range(30)}
    assert "" in wrong and any(len(w) > len(document) for w in wrong)
