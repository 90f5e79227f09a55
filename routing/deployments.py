"""One deployment: a model reachable through one provider endpoint, with its prices and limits."""

from __future__ import annotations

from pydantic import Field, model_validator

from routing.prices import Prices
from routing.schema import StrictModel


class SimModel(StrictModel):
    """How the offline `sim` provider behaves for this deployment."""

    skill: float = Field(ge=0, le=1)  # probability of answering an item right
    latency_ms: float = Field(default=200, ge=0)  # median latency
    latency_spread: float = Field(default=0.5, ge=0)  # sigma of the log-normal around the median
    seed: int = 0
    words_per_answer: int = Field(default=40, ge=1)  # typical length of free-text answers
    # Item-dependent skill (providers/sim.py), so a router has something to learn: each label
    # (or text, without one) gets a fixed difficulty in [-1, 1] from its hash, and the skill's
    # log-odds move by `difficulty` x that. 0 keeps one skill for every item.
    difficulty: float = Field(default=0, ge=0, le=10)
    # Return token logprobs whose confidence tracks whether the answer is right (noisily).
    logprobs: bool = False


class Timeouts(StrictModel):
    """httpx timeouts in seconds. LLM calls are slow: the read timeout is far above httpx's 5 s."""

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=120.0, gt=0)
    write: float = Field(default=10.0, gt=0)
    pool: float = Field(default=10.0, gt=0)


class Deployment(StrictModel):
    provider: str = Field(min_length=1)  # sim | openai | anthropic | gemini | replay | ...
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None  # the NAME of the environment variable holding the key
    prices: Prices | None = None  # None: looked up in the built-in price table by model
    context_window: int = Field(default=128_000, ge=256)
    max_output_tokens: int = Field(default=512, ge=1)
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    json_output: bool = False
    logprobs: bool = False
    extra_headers: dict[str, str] = Field(default_factory=dict)
    extra_query: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    sim: SimModel | None = None
    replay_file: str | None = None  # replay only: the recorded-outcomes table (JSONL or CSV)
    # OpenAI-compatible servers: which quirk profile to use (openai, azure_openai, together, groq,
    # fireworks, deepseek, openrouter, vllm, llamacpp, ollama). None: the provider name decides.
    profile: str | None = None

    @model_validator(mode="after")
    def _window_from_the_price_table(self) -> Deployment:
        """A deployment that does not say its window gets its model's from the price table
        (`prices import` maps LiteLLM's max_input_tokens), so a 1M-token Gemini is not cut
        to 128k and an older 16k model is not sent prompts it must refuse; 128000 otherwise."""
        if "context_window" in self.model_fields_set or self.provider in ("sim", "replay"):
            return self
        from routing.price_table import PriceTableError, price_table

        try:
            window = price_table().context_window(self.model, self.provider)
        except PriceTableError:  # a broken override file is reported where prices are read
            return self
        if window is not None:
            self.context_window = max(window, 256)
        return self

    @model_validator(mode="after")
    def _sim_needs_its_settings(self) -> Deployment:
        if self.provider == "sim" and self.sim is None:
            raise ValueError("a sim deployment needs a `sim:` block (skill, latency_ms)")
        if self.provider == "sim" and self.prices is None:
            raise ValueError("a sim deployment needs `prices:` (its model is not in any table)")
        return self
