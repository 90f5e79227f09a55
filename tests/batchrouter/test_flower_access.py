"""Who can reach Flower and the metrics port (issue 13, section 3): loopback by default, a
non-loopback Flower only with a password, and the password never on a command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from batchrouter.cli import app
from tests.conftest import ROOT
from tests.helpers.net import free_port, poll

runner = CliRunner()
PASSWORD = "s3cret-not-in-argv"


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """What `batchrouter flower` would exec (command line, environment), instead of Flower."""
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((list(argv), dict(env)))

    monkeypatch.setattr(os, "execve", fake_execve)
    for name in ("FLOWER_BASIC_AUTH", "FLOWER_AUTH", "FLOWER_UNAUTHENTICATED_API"):
        monkeypatch.delenv(name, raising=False)
    return calls


def flower(*args: str, **env: str) -> Any:
    return runner.invoke(app, ["flower", *args], env=env or None)


def test_flower_listens_on_loopback_by_default(execs: list) -> None:
    result = flower()
    assert result.exit_code == 0, result.output
    [(argv, _env)] = execs
    assert "--address=127.0.0.1" in argv


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "", "10.1.2.3", "flower.internal"])
def test_flower_refuses_a_non_loopback_address_without_a_password(
    execs: list, address: str
) -> None:
    result = flower("--address", address)
    assert result.exit_code == 2
    assert "refusing to serve Flower on" in result.output and "without a password" in result.output
    assert execs == []


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_flower_may_listen_on_any_loopback_address_without_one(execs: list, address: str) -> None:
    assert flower("--address", address).exit_code == 0


def test_the_password_from_the_environment_stays_in_the_environment(execs: list) -> None:
    result = flower("--address", "0.0.0.0", FLOWER_BASIC_AUTH=f"ops:{PASSWORD}")
    assert result.exit_code == 0, result.output
    [(argv, env)] = execs
    assert "--address=0.0.0.0" in argv
    assert not any(PASSWORD in part for part in argv)
    assert env["FLOWER_BASIC_AUTH"] == f"ops:{PASSWORD}"


def test_the_password_may_come_from_a_file(execs: list, tmp_path: Path) -> None:
    secret = tmp_path / "flower.auth"
    secret.write_text(f"ops:{PASSWORD}\n")
    result = flower("--address", "0.0.0.0", "--basic-auth-file", str(secret))
    assert result.exit_code == 0, result.output
    [(argv, env)] = execs
    assert not any(PASSWORD in part for part in argv)
    assert env["FLOWER_BASIC_AUTH"] == f"ops:{PASSWORD}"
    secret.write_text("no colon here\n")
    assert flower("--basic-auth-file", str(secret)).exit_code == 2


def test_metrics_listen_on_loopback_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from routing.settings import get_settings
    from worker import metrics

    bound: list[tuple[int, str]] = []
    monkeypatch.setattr(metrics, "start_http_server", lambda port, addr: bound.append((port, addr)))
    monkeypatch.setattr(metrics.REGISTRY, "register", lambda collector: None)
    monkeypatch.delenv("BATCHROUTER_METRICS_ADDRESS", raising=False)
    get_settings.cache_clear()
    metrics.start_exporter(9808)
    monkeypatch.setenv("BATCHROUTER_METRICS_ADDRESS", "0.0.0.0")
    get_settings.cache_clear()
    metrics.start_exporter(9809)
    get_settings.cache_clear()
    assert bound == [(9808, "127.0.0.1"), (9809, "0.0.0.0")]


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_a_running_flower_keeps_its_password_off_its_command_line(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BATCHROUTER_BROKER_URL": redis_url,
        "FLOWER_BASIC_AUTH": f"ops:{PASSWORD}",
    }
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "batchrouter", "flower", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        poll(lambda: httpx.get(f"{url}/healthcheck", timeout=5).status_code == 200, 60, "Flower")
        # What `ps` shows: the command line of the process (exec replaced the CLI's own).
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"flower" in argv and f"--port={port}".encode() in argv
        assert not any(PASSWORD.encode() in part for part in argv)
        # ...and the password from the environment is the one Flower asks for.
        assert httpx.get(f"{url}/", timeout=5).status_code == 401
        assert httpx.get(f"{url}/", auth=("ops", PASSWORD), timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
