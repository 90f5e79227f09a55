"""The command line as a user runs it: real processes, the real Redis broker, a SQLite ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, inspect, text

from tests.conftest import EXAMPLES, ROOT
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]
LADDER = ["tier0", "tier1", "tier2"]


def cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchrouter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "BATCHROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "BATCHROUTER_BROKER_URL": redis_url,
        "BATCHROUTER_HOME": str(tmp_path / "home"),
        "BATCHROUTER_CONFIG": str(EXAMPLES / "routing.yaml"),
    }


def nothing_enqueued(env: dict[str, str]) -> None:
    client = redis.Redis.from_url(env["BATCHROUTER_BROKER_URL"])
    assert sum(client.llen(q) for q in LADDER) == 0
    engine = create_engine(env["BATCHROUTER_DATABASE_URL"])
    if inspect(engine).has_table("batches"):
        with engine.connect() as connection:
            assert connection.execute(text("select count(*) from items")).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"id": 1, "text": "ok"}\n{"id": 2, "text": oops}\n', [], "in.jsonl:2: not valid JSON"),
        ('{"id": 1, "text": ""}\n', [], "in.jsonl:1: 'text' is empty"),
        ('{"id": 1, "text": "ok"}\n', ["--type", "translation"], "unknown task type 'translation'"),
        (
            '{"id": 1, "text": "ok"}\n',
            ["--config", "missing.yaml"],
            "missing.yaml: routing file not found",
        ),
    ],
)
def test_bad_input_fails_clearly_and_enqueues_nothing(
    env: dict[str, str], tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    if "--type" not in args:
        args = ["--type", "ticket_classification", *args]
    result = cli("submit", str(source), *args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.replace("\n", "")
    nothing_enqueued(env)


def test_a_missing_file_and_a_broken_routing_file_exit_2(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = cli("submit", str(tmp_path / "nope.jsonl"), "--type", "ticket_classification", env=env)
    assert result.returncode == 2 and "nope.jsonl: no such file" in result.stderr
    broken = tmp_path / "rules.yaml"
    broken.write_text((EXAMPLES / "routing.yaml").read_text().replace("skill: 0.72", "skill: 7.2"))
    result = cli(
        "submit",
        str(EXAMPLES / "tickets.csv"),
        "--type",
        "ticket_classification",
        "--config",
        str(broken),
        env=env,
    )
    assert result.returncode == 2
    assert "rules.yaml:10: deployments.sim-nano.sim.skill" in result.stderr.replace("\n", "")
    nothing_enqueued(env)


def test_a_10mb_text_and_invalid_utf8_are_refused_by_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    big = tmp_path / "big.jsonl"
    big.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "text": "' + "x" * 10_000_000 + '"}\n')
    result = cli("submit", str(big), "--type", "ticket_classification", env=env)
    assert result.returncode == 2
    assert "big.jsonl:2: 'text' is 10,000,000 bytes" in result.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,text\n1,fine\n2,caf\xe9 au lait\n")
    result = cli("submit", str(latin), "--type", "ticket_classification", env=env)
    assert result.returncode == 2 and "latin.csv:3: not valid UTF-8" in result.stderr
    nothing_enqueued(env)


def test_submit_wait_status_report_results(env: dict[str, str], tmp_path: Path) -> None:
    with running_workers(
        LADDER,
        database_url=env["BATCHROUTER_DATABASE_URL"],
        broker_url=env["BATCHROUTER_BROKER_URL"],
        log_dir=tmp_path,
    ):
        submitted = cli(
            "submit",
            "examples/tickets.jsonl",
            "--type",
            "ticket_classification",
            "--name",
            "cli-test",
            "--wait",
            env=env,
        )
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert len(batch_id) == 32
    assert "600/600" in submitted.stderr  # the progress bar reached the end

    status = cli("status", "cli-test", "--format", "json", env=env)
    assert status.returncode == 0
    assert json.loads(status.stdout)["by_state"] == {"succeeded": 600}

    report = cli("report", batch_id[:8], env=env)
    assert report.returncode == 0
    for words in ("By tier", "escalated", "premium tier (tier2) alone", "saving", "sim provider"):
        assert words in report.stdout
    as_json = json.loads(cli("report", batch_id, "--format", "json", env=env).stdout)
    assert as_json["by_tier"][1]["items_received"] > 0 and as_json["saving_pct"] > 50

    out = tmp_path / "results.jsonl"
    assert cli("results", batch_id, "--out", str(out), env=env).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 600 and rows[0]["id"] == "T-00001" and rows[0]["model"]

    assert cli("status", "no-such-batch", env=env).returncode == 2
