"""The offline `sim` provider: deterministic, seeded answers with realistic latency and usage.

Each sim deployment has a skill (the probability of answering an item right), a latency
distribution and prices. For an item that carries an expected answer, the sim answers right with
probability `skill`; otherwise it gives a wrong label or a malformed answer, as cheap models do.
For free text (summaries) a right answer is a short extract and a wrong one is empty, a refusal or
far too long. The same item, model and attempt number always get the same answer.

Two settings make the sim something to learn from (docs/learning.md): `difficulty` makes the
skill depend on the item (each label is easier or harder, for every model), and `logprobs`
returns token logprobs whose confidence tracks, noisily, whether the answer is right. Both are
off by default, so existing routing files get exactly the answers they always got.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re

from routing.deployments import Deployment, SimModel
from routing.tokens import count_message_tokens, encode_len
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    ProviderError,
    Usage,
)


def approx_tokens(text: str) -> int:
    """Tokens of `text` in o200k_base (tiktoken, offline; the encoding is built once and cached)."""
    return max(1, encode_len(text, "o200k_base"))


class SimProvider:
    """Needs no network and no key. Its numbers are simulated and reports say so."""

    def __init__(self, time_scale: float | None = None) -> None:
        if time_scale is None:  # BATCHROUTER_SIM_TIME_SCALE shrinks latencies for tests and demos
            from routing.settings import get_settings

            time_scale = get_settings().sim_time_scale
        self.time_scale = time_scale

    async def complete(
        self, request: CompletionRequest, deployment: Deployment
    ) -> CompletionResult:
        sim = deployment.sim
        if sim is None:
            raise ProviderError(
                ErrorClass.PERMANENT, f"deployment {request.deployment!r} has no sim settings"
            )
        rng = _rng(sim, request)
        latency_ms = sim.latency_ms * math.exp(rng.gauss(0.0, sim.latency_spread))
        await asyncio.sleep(latency_ms / 1000 * self.time_scale)
        skill = item_skill(sim, request)
        text, right = _answer(sim, request, rng, skill)
        output_tokens = min(approx_tokens(text) + 1, request.max_output_tokens)
        logprobs = _logprobs(rng, skill, right, output_tokens) if sim.logprobs else None
        usage = Usage(
            # The OpenAI cookbook count in o200k: the sim behaves like an OpenAI-style model.
            input_tokens=count_message_tokens(request.messages, "gpt-4o"),
            output_tokens=output_tokens,
        )
        return CompletionResult(
            text=text,
            usage=usage,
            finish_reason="stop",
            latency_ms=latency_ms,
            request_id=f"sim-{rng.getrandbits(48):012x}",
            raw_usage=usage.model_dump(),
            token_logprobs=logprobs,
        )


def item_skill(sim: SimModel, request: CompletionRequest) -> float:
    """The chance of a right answer on this item: `skill`, moved on the log-odds scale by the
    item's difficulty (a fixed value in [-1, 1] hashed from its label, else its text) times
    `difficulty`. Hard labels are hard for every model; a weaker `difficulty` setting makes a
    model less sensitive to them."""
    if not sim.difficulty or sim.skill in (0.0, 1.0):
        return sim.skill
    basis = request.meta.expected or request.messages[-1].content
    digest = hashlib.sha256(f"difficulty|{basis}".encode()).digest()
    hardness = int.from_bytes(digest[:4], "big") / 2**32 * 2 - 1
    logit = math.log(sim.skill / (1 - sim.skill)) - sim.difficulty * hardness
    return 1 / (1 + math.exp(-logit))


def _logprobs(rng: random.Random, skill: float, right: bool, tokens: int) -> list[float]:
    """Token logprobs whose mean probability is the item's skill, nudged up for a right answer
    and down for a wrong one, with noise: a confidence signal that is informative, not exact."""
    confidence = skill + (0.12 if right else -0.12) + rng.gauss(0.0, 0.08)
    confidence = min(max(confidence, 0.01), 0.999)
    return [math.log(confidence)] * max(tokens, 1)


def _rng(sim: SimModel, request: CompletionRequest) -> random.Random:
    key = f"{sim.seed}|{request.model}|{request.meta.item_key}|{request.meta.attempt_no}"
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _answer(
    sim: SimModel, request: CompletionRequest, rng: random.Random, skill: float
) -> tuple[str, bool]:
    right = rng.random() < skill
    return _text(sim, request, rng, right), right


def _text(sim: SimModel, request: CompletionRequest, rng: random.Random, right: bool) -> str:
    meta = request.meta
    if meta.expected is not None:
        if right:
            return rng.choice([meta.expected, meta.expected, meta.expected.replace("_", " ")])
        others = [label for label in meta.labels if label != meta.expected]
        if others and rng.random() < 0.5:
            return rng.choice(others)  # a wrong but well-formed label: no check can catch it
        return rng.choice(
            [
                "",
                "I'm not sure which category this belongs to.",
                f"This looks like a question about {meta.expected.split('_')[0]} or something else.",
                "Category: unknown",
            ]
        )
    source = request.messages[-1].content
    if right:
        return _extract_summary(source, sim.words_per_answer)
    return rng.choice(
        [
            "",
            "I'm sorry, but I can't help with that request.",
            (source + " ") * 2,  # rambling far past any length bound
        ]
    )


def _extract_summary(source: str, words: int) -> str:
    body = source.split("\n\n", 1)[-1] if "\n\n" in source else source
    sentences = re.split(r"(?<=[.!?])\s+", body.strip())
    picked: list[str] = []
    for sentence in sentences:
        if picked and len(" ".join(picked).split()) + len(sentence.split()) > words:
            break
        picked.append(sentence)
    return " ".join(picked)
