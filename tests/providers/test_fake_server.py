"""The fake server as users run it: config files, the command line, answers, caching, stats."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pydantic
import pytest

from providers.fake_server import (
    AnswerConfig,
    ErrorsConfig,
    FakeServerConfig,
    free_port,
    load_fake_config,
    running_fake_server,
)
from providers.fake_server.limits import go_duration

YAML = """
latency: {distribution: lognormal, ms: 5, spread: 0.3}
errors: {rate_limit: 0.0, server_error: 0.0}
limits: {rpm: 1000, tpm: 100000}
answer: {mode: fixed, text: billing}
answers:
  "claude-*": {mode: label, labels: [bug, billing, other]}
"""


def test_yaml_config_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text(YAML)
    config = load_fake_config(path)
    assert config.latency.distribution == "lognormal" and config.limits.rpm == 1000
    assert config.answer_for("gpt-4o").text == "billing"
    assert config.answer_for("claude-haiku-4-5").mode == "label"
    with pytest.raises(pydantic.ValidationError, match="add up to"):
        ErrorsConfig(rate_limit=0.7, server_error=0.5)
    with pytest.raises(pydantic.ValidationError):
        FakeServerConfig.model_validate({"latncy": {}})  # typos are errors, not ignored


def test_command_line_server(tmp_path: Path) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text(YAML)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "providers.fake_server",
            "--port",
            str(port),
            "--config",
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=5)
        assert answer.json()["choices"][0]["message"]["content"] == "billing"
        assert answer.headers["x-ratelimit-limit-requests"] == "1000"
        stats = httpx.get(f"{url}/_stats", timeout=5).json()
        assert stats["requests"] == 1 and stats["by_format"] == {"openai": 1}
    finally:
        proc.terminate()
        proc.wait(10)


def test_answers_json_and_cache() -> None:
    config = FakeServerConfig(
        answers={"claude-*": AnswerConfig(mode="label", labels=["bug", "billing"])},
        answer=AnswerConfig(mode="summary", words=3),
    )
    with running_fake_server(config) as url:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "one two three four"}]}
        got = httpx.post(f"{url}/v1/chat/completions", json=body).json()
        assert got["choices"][0]["message"]["content"] == "one two three"
        body["response_format"] = {"type": "json_object"}
        got = httpx.post(f"{url}/v1/chat/completions", json=body).json()
        assert got["choices"][0]["message"]["content"] == '{"answer": "one two three"}'
        claude = {"model": "claude-x", "max_tokens": 5, "messages": body["messages"]}
        label = httpx.post(f"{url}/v1/messages", json=claude).json()["content"][0]["text"]
        assert label in ("bug", "billing")
        # A repeated long system prompt is reported as cached, in 128-token steps.
        system = "You classify support tickets. " * 300
        long = {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}],
        }
        first = httpx.post(f"{url}/v1/chat/completions", json=long).json()["usage"]
        second = httpx.post(f"{url}/v1/chat/completions", json=long).json()["usage"]
        assert first["prompt_tokens_details"]["cached_tokens"] == 0
        cached = second["prompt_tokens_details"]["cached_tokens"]
        assert cached >= 1024 and cached % 128 == 0 and cached <= second["prompt_tokens"]


def test_truncated_body_is_cut_on_the_wire() -> None:
    with running_fake_server(FakeServerConfig(errors=ErrorsConfig(truncated_body=1.0))) as url:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{url}/v1/chat/completions", json=body)


def test_go_durations() -> None:
    assert go_duration(0.02) == "20ms"
    assert go_duration(1.5) == "1.5s"
    assert go_duration(360) == "6m0s"
