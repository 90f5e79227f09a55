"""docker-compose.yml stays valid, and Flower refuses to start without basic auth.

Needs the `docker-compose` checker only (Debian: `apt-get install docker-compose`), no Docker
engine. Skipped where it is missing, except in CI (CI set), where a missing checker fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
REQUIRED_SERVICES = {"redis", "postgres", "worker-tier0", "worker-tier1", "worker-tier2", "flower"}


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed; CI must install it (apt docker-compose)")
        pytest.skip("docker-compose is not installed")
    return exe


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with FLOWER_BASIC_AUTH only if given, and no .env file read."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    base = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), "--env-file", str(empty_env_file), "config"],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_config_is_valid_with_flower_auth(tmp_path: Path) -> None:
    result = compose_config(tmp_path, FLOWER_BASIC_AUTH="admin:secret")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) >= REQUIRED_SERVICES
    flower = services["flower"]
    assert flower["command"] == ["batchrouter", "flower", "--port", "5555", "--address", "0.0.0.0"]
    # The password is in Flower's environment, not on its command line (`ps` shows that).
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:secret"
    assert flower["environment"]["BATCHROUTER_BROKER_URL"] == "redis://redis:6379/0"
    assert not any("secret" in part for part in flower["command"])
    for tier in range(3):
        worker = services[f"worker-tier{tier}"]
        assert worker["command"][-2:] == ["--tier", str(tier)]
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert worker["environment"]["BATCHROUTER_BROKER_URL"] == "redis://redis:6379/0"


def test_config_fails_without_flower_auth(tmp_path: Path) -> None:
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr + result.stdout
