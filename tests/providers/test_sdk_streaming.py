"""The official SDKs' streaming helpers, `count_tokens` and prompt-cache usage against the fake
server: what a streamed answer assembles to must equal the non-streamed answer, usage included."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from providers.anthropic import parse_usage
from providers.fake_server import AnswerConfig, FakeServerConfig, running_fake_server
from routing.prices import Prices, cost_usd
from tests.providers.conftest import SDK_KEY as KEY

TEXT = "Grüße aus Köln: the naïve café ☕ serves 3 kinds of crème brûlée."
LONG = "Refunds are issued within 14 days of a valid claim. " * 200  # ~2,200 tokens


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_fake_server(FakeServerConfig(api_key=KEY, answer=AnswerConfig(mode="echo"))) as u:
        yield u


def _messages(text: str = TEXT) -> list:
    return [{"role": "system", "content": "Repeat the user."}, {"role": "user", "content": text}]


def test_openai_stream_yields_the_answer_in_chunks_and_usage_last(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model="gpt-4o", messages=_messages())
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=_messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 5  # token by token, not one blob
    assert "".join(pieces) == whole.choices[0].message.content == TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_without_include_usage_has_no_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o", messages=_messages(), stream=True))
    assert chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_openai_stream_helper_assembles_completion_and_logprobs(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model="gpt-4o", messages=_messages("Hello, world!"))
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=_messages("Hello, world!"),
        logprobs=True,
        stream_options={"include_usage": True},
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "Hello, world!" == final.choices[0].message.content
    assert final.usage is not None and whole.usage is not None
    assert final.usage.prompt_tokens == whole.usage.prompt_tokens == 19
    assert final.usage.completion_tokens == 4
    logprobs = final.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [t.token for t in logprobs.content] == ["Hello", ",", " world", "!"]


def test_anthropic_stream_helper_assembles_message_and_usage(ant: anthropic.Anthropic) -> None:
    args = {
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "system": "Repeat the user.",
        "messages": [{"role": "user", "content": TEXT}],
    }
    whole = ant.messages.create(**args)  # type: ignore[call-overload]
    with ant.messages.stream(**args) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.id.startswith("msg_")
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens > 5


def test_anthropic_count_tokens_is_what_the_message_bills(ant: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": TEXT}]
    counted = ant.messages.count_tokens(
        model="claude-haiku-4-5",
        system="Repeat the user.",
        messages=messages,  # type: ignore[arg-type]
    )
    sent = ant.messages.create(
        model="claude-haiku-4-5",
        max_tokens=5,
        system="Repeat the user.",
        messages=messages,  # type: ignore[arg-type]
    )
    assert counted.input_tokens == sent.usage.input_tokens > 10


def test_anthropic_reports_cache_writes_then_reads(ant: anthropic.Anthropic) -> None:
    def ask(ttl: str | None, question: str, stream: bool = False) -> anthropic.types.Usage:
        control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
        args = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "system": [{"type": "text", "text": f"{ttl} policy. {LONG}", "cache_control": control}],
            "messages": [{"role": "user", "content": question}],
        }
        if stream:
            with ant.messages.stream(**args) as s:  # type: ignore[arg-type]
                return s.get_final_message().usage
        return ant.messages.create(**args).usage  # type: ignore[call-overload]

    first = ask(None, "Can I get a refund?")
    assert (
        first.cache_creation_input_tokens is not None and first.cache_creation_input_tokens > 1024
    )
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens  # type: ignore[union-attr]
    second = ask(None, "How long does it take?", stream=True)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    hour = ask("1h", "Can I get a refund?")
    assert hour.cache_creation.ephemeral_1h_input_tokens > 1024  # type: ignore[union-attr]

    # Our adapter turns the reported usage into the cost the invoice shows (docs/providers.md).
    usage = parse_usage(second.model_dump())
    assert usage.cached_input_tokens == second.cache_read_input_tokens
    prices = Prices(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    expected = (
        second.input_tokens * 3.0
        + second.cache_read_input_tokens * 0.3
        + second.output_tokens * 15.0
    ) / 1e6
    assert cost_usd(usage, prices) == pytest.approx(expected)


def test_anthropic_short_or_unmarked_prompts_are_not_cached(ant: anthropic.Anthropic) -> None:
    for _ in range(2):
        short = ant.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=5,
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": "hi"}],
        )
        unmarked = ant.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=5,
            system=LONG,
            messages=[{"role": "user", "content": "hi"}],
        )
        for usage in (short.usage, unmarked.usage):
            assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


def test_errors_before_a_stream_are_status_errors(
    oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(
            model="gpt-4o",
            messages=_messages(),
            stream=True,
            extra_headers={"x-fake-error": "rate_limit"},
        )
    with pytest.raises(anthropic.InternalServerError) as info:  # noqa: SIM117
        with ant.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-error": "overloaded"},
        ) as stream:
            stream.get_final_message()
    assert info.value.status_code == 529


def test_a_stream_cut_after_its_200_is_an_error_not_a_short_answer(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=_messages(),
        stream=True,
        extra_headers={"x-fake-error": "truncated_body"},
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        received += [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(received) != TEXT
