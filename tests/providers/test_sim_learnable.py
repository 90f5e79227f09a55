"""The sim's two settings for learning: item-dependent skill and informative logprobs. Off by
default, so existing routing files get the answers they always got."""

from __future__ import annotations

import asyncio
import math

from providers.sim import SimProvider, item_skill
from routing.deployments import Deployment, SimModel
from routing.types import CompletionRequest, Message, RequestMeta

LABELS = [f"label_{n}" for n in range(20)]


def request(item: int, expected: str) -> CompletionRequest:
    meta = RequestMeta(item_key=f"i{item}", expected=expected, labels=LABELS)
    return CompletionRequest(
        deployment="d",
        model="sim-m",
        messages=[Message(role="user", content=f"q {item}")],
        meta=meta,
    )


def answers(sim: SimModel, count: int = 2000) -> list[tuple[str, str, list[float] | None]]:
    deployment = Deployment(
        provider="sim", model="sim-m", sim=sim, prices={"input": 1, "output": 1}
    )
    provider = SimProvider(time_scale=0.0)

    async def run() -> list[tuple[str, str, list[float] | None]]:
        out = []
        for item in range(count):
            expected = LABELS[item % len(LABELS)]
            result = await provider.complete(request(item, expected), deployment)
            out.append((expected, result.text, result.token_logprobs))
        return out

    return asyncio.run(run())


def test_without_the_settings_every_item_has_the_same_skill_and_no_logprobs() -> None:
    sim = SimModel(skill=0.7)
    assert {item_skill(sim, request(i, LABELS[i % 20])) for i in range(40)} == {0.7}
    assert all(logprobs is None for _, _, logprobs in answers(sim, 50))


def test_difficulty_makes_some_labels_harder_for_every_model() -> None:
    weak, strong = SimModel(skill=0.7, difficulty=2.5), SimModel(skill=0.9, difficulty=1.0)
    for label in LABELS[:5]:
        a, b = item_skill(weak, request(1, label)), item_skill(strong, request(2, label))
        assert (a < 0.7) == (b < 0.9)  # the same labels are hard for both
    skills = sorted(item_skill(weak, request(0, label)) for label in LABELS)
    assert skills[0] < 0.4 and skills[-1] > 0.9
    right = {label: 0 for label in LABELS}
    for expected, text, _ in answers(weak):
        right[expected] += text.replace(" ", "_") == expected
    hardest = min(LABELS, key=lambda label: item_skill(weak, request(0, label)))
    easiest = max(LABELS, key=lambda label: item_skill(weak, request(0, label)))
    assert right[hardest] < right[easiest]


def test_logprobs_are_more_confident_on_right_answers() -> None:
    found = answers(SimModel(skill=0.7, difficulty=1.0, logprobs=True))
    confidence = {True: [], False: []}  # type: dict[bool, list[float]]
    for expected, text, logprobs in found:
        assert logprobs
        mean = math.exp(sum(logprobs) / len(logprobs))
        confidence[text.replace(" ", "_") == expected].append(mean)
    assert sum(confidence[True]) / len(confidence[True]) > 0.15 + sum(confidence[False]) / len(
        confidence[False]
    )
