"""The operator's terminal (issue 16), through the command as a user runs it: `submit --wait`
in a real terminal (a pty) on real workers, servers that cannot be reached, `results` over an
existing file, and batch references that match several batches."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT
from tests.helpers.workers import running_workers

LADDER = ["tier0", "tier1", "tier2"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchrouter", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


class Terminal:
    """A command running in a pseudo-terminal: what it printed (colours stripped), keys sent
    to it, its exit code."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        # Wide enough that no line of ours wraps; rich reads COLUMNS.
        env = {**env, "COLUMNS": "400", "LINES": "50", "TERM": "xterm-256color"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: its controlling terminal is the pty
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "batchrouter", *args], env)
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def read_until(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never shown; the terminal shows:\n{self.text}")
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the child ended and closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{pattern!r} never shown before the end:\n{self.text}")
                self.raw += chunk

    def press_ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")  # the terminal sends SIGINT to its foreground process

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.2)[0]:
                with suppress(OSError):  # the child ended and closed the terminal
                    self.raw += os.read(self.fd, 65536)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the command did not end; the terminal shows:\n{self.text}")


@pytest.fixture
def env(tmp_path: Path, redis_url: str, sqlite_url: str, use_ledger) -> dict[str, str]:
    use_ledger(sqlite_url)
    return {
        **os.environ,
        "BATCHROUTER_DATABASE_URL": sqlite_url,
        "BATCHROUTER_BROKER_URL": redis_url,
        "BATCHROUTER_HOME": str(tmp_path / "home"),
        "BATCHROUTER_CONFIG": str(EXAMPLES / "routing.yaml"),
    }


@contextmanager
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    with running_workers(
        LADDER,
        database_url=env["BATCHROUTER_DATABASE_URL"],
        broker_url=env["BATCHROUTER_BROKER_URL"],
        log_dir=tmp_path,
    ):
        yield


def tickets(tmp_path: Path, count: int) -> Path:
    path = tmp_path / f"tickets-{count}.jsonl"
    path.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:count]))
    return path


@pytest.mark.redis
@pytest.mark.timeout(300)
def test_submit_wait_shows_a_budget_pause_and_ctrl_c_leaves_a_hint(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tickets(tmp_path, 100)
    with workers(env, tmp_path):
        shell = Terminal(
            ["submit", str(source), "--type", "ticket_classification", "--budget", "0.0001",
             "--wait"],
            env,
        )  # fmt: skip
        batch_id = shell.read_until(r"\b([0-9a-f]{32})\b").group(1)
        # The pause, its reason and what resumes it, on a line of its own...
        shell.read_until(
            rf"batch {batch_id} paused: budget of \$0\.0001 for batch {batch_id} exhausted"
            rf".*raise it with `batchrouter budget {batch_id} --set USD`"
        )
        # ...and on the bar, in place of the rate and ETA.
        shell.read_until(r"PAUSED: budget of \$0\.0001")
        shell.press_ctrl_c()
        code = shell.wait()
    assert code == 130, shell.text
    assert f"stopped watching; batch {batch_id} goes on" in shell.text
    assert f"`batchrouter status {batch_id}`" in shell.text
    assert "Traceback" not in shell.text


@pytest.mark.redis
@pytest.mark.timeout(300)
def test_submit_wait_shows_rate_eta_a_summary_and_the_retry_hint(
    env: dict[str, str], tmp_path: Path
) -> None:
    hopeless = tmp_path / "rules.yaml"  # every model answers wrong: items fail at the top
    text = (EXAMPLES / "routing.yaml").read_text()
    for skill in ("0.97", "0.72", "0.86"):
        text = text.replace(f"skill: {skill}", "skill: 0.0")
    hopeless.write_text(text)
    source = tickets(tmp_path, 30)
    with workers(env, tmp_path):
        shell = Terminal(
            ["submit", str(source), "--type", "ticket_classification", "--config",
             str(hopeless), "--wait"],
            env,
        )  # fmt: skip
        code = shell.wait(timeout=240)
    shown = shell.text
    assert code == 1, shown  # the batch ended with failed items
    batch_id = re.search(r"\b([0-9a-f]{32})\b", shown).group(1)  # type: ignore[union-attr]
    assert re.search(r"measuring rate|[\d.]+ items/s, ETA", shown), shown
    summary = re.search(
        rf"batch {batch_id} finished in \d+:\d\d: 30 items, (\d+) succeeded, (\d+) failed; "
        r"spent \$[\d.]+",
        shown,
    )
    assert summary, shown
    failed = int(summary.group(2))
    assert failed > 0 and int(summary.group(1)) + failed == 30
    assert f"{failed} items failed: `batchrouter status {batch_id} --failed` lists them" in shown
    assert f"`batchrouter retry {batch_id} --failed` runs them again" in shown


def test_the_rate_and_eta_come_from_the_last_minute() -> None:
    from batchrouter.reports.progress import Pace, clock

    pace = Pace()
    pace.add(0.0, 0)
    assert pace.rate() is None  # one sample: no rate yet
    for second in range(1, 121):
        pace.add(float(second), second if second <= 60 else 60 + 10 * (second - 60))
    assert pace.rate() == pytest.approx(10.0, rel=0.05)  # the first minute's pace is forgotten
    assert pace.eta_s(600) == pytest.approx(60.0, rel=0.05)
    assert clock(65) == "1:05" and clock(3725) == "1:02:05"


DATABASE_DOWN = "postgresql+psycopg://batchrouter:s3cret-pw@127.0.0.1:1/ledger"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "b1"],  # the quick path (psycopg alone)
        ["status", "b1", "--failed"],  # the SQLAlchemy path
        ["report"],
        ["results", "b1", "--out", "out.jsonl"],
    ],
)
def test_an_unreachable_database_is_one_line_and_exit_3(tmp_path: Path, args: list[str]) -> None:
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": DATABASE_DOWN}
    env["BATCHROUTER_HOME"] = str(tmp_path)
    done = cli(*args, env=env)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot reach the ledger database at ")
    assert "postgresql+psycopg://batchrouter:***@127.0.0.1:1/ledger" in lines[0]
    assert "Connection refused" in lines[0] and "BATCHROUTER_DATABASE_URL" in lines[0]
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_an_unreachable_redis_is_one_line_exit_3_and_leaves_no_batch(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {
        **os.environ,
        "BATCHROUTER_DATABASE_URL": sqlite_url,
        "BATCHROUTER_BROKER_URL": "redis://:s3cret-pw@127.0.0.1:1/0",
        "BATCHROUTER_HOME": str(tmp_path),
        "BATCHROUTER_CONFIG": str(EXAMPLES / "routing.yaml"),
    }
    done = cli("submit", str(tickets(tmp_path, 5)), "--type", "ticket_classification", env=env)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: cannot reach Redis at redis://:***@127.0.0.1:1/0 ")
    assert "BATCHROUTER_BROKER_URL" in error
    assert "the batch was removed from the ledger" in done.stderr
    listed = cli("report", "--format", "json", env=env)
    assert json.loads(listed.stdout)["items"] == 0, listed.stdout


def test_results_for_an_unknown_batch_leave_an_existing_file_alone(
    tmp_path: Path, sqlite_url: str
) -> None:
    from ledger.db import upgrade_schema

    upgrade_schema(sqlite_url)
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": sqlite_url, "BATCHROUTER_HOME": str(tmp_path)}
    existing = tmp_path / "existing.jsonl"
    existing.write_text('{"id": "kept"}\n')
    done = cli("results", "nope", "--out", str(existing), env=env)
    assert done.returncode == 2 and "no batch 'nope'" in done.stderr
    assert existing.read_text() == '{"id": "kept"}\n'
    assert sorted(p.name for p in tmp_path.iterdir() if "existing" in p.name) == [existing.name]


def add_batch(url: str, batch_id: str, name: str | None, hours_ago: float) -> None:
    """A batch row as an older ledger may hold it (two batches of one name were allowed)."""
    from ledger.db import session_scope
    from ledger.models import Batch, utcnow

    with session_scope(url) as session:
        session.add(
            Batch(id=batch_id, name=name, task_type="ticket_classification", config_yaml="",
                  config_source="test", total=3, done=0,
                  created_at=utcnow() - timedelta(hours=hours_ago))
        )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_reference_to_several_batches_lists_them(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    from ledger.db import upgrade_schema

    url = request.getfixturevalue(f"{database}_url")
    upgrade_schema(url)
    first, second, third = "abc1" + "0" * 28, "abc2" + "0" * 28, "f" * 32
    add_batch(url, first, "nightly-2026-11-30", 2)
    add_batch(url, second, "nightly-2026-11-30", 1)  # the cron and the beat example, same day
    add_batch(url, third, "other", 0)
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": url, "BATCHROUTER_HOME": str(tmp_path)}
    for args in (["status", "abc"], ["status", "abc", "--format", "json"], ["report", "abc"]):
        done = cli(*args, env=env)
        assert done.returncode == 2, done.stderr
        assert "'abc' is ambiguous: it is the id prefix of several batches" in done.stderr
        assert first in done.stderr and second in done.stderr and third not in done.stderr
    out = tmp_path / "out.jsonl"
    for args in (["status", "nightly-2026-11-30"], ["results", "nightly-2026-11-30", "--out",
                 str(out)]):  # fmt: skip
        done = cli(*args, env=env)
        assert done.returncode == 2, done.stderr
        assert "'nightly-2026-11-30' is ambiguous: it is the name of several batches" in (
            done.stderr.replace("\n", "")
        )
        assert done.stderr.index(second) < done.stderr.index(first)  # newest first
    assert not out.exists()
    assert json.loads(cli("status", "abc1", "--format", "json", env=env).stdout)["batch_id"] == (
        first
    )
    assert json.loads(cli("status", "other", "--format", "json", env=env).stdout)["total"] == 3


def test_submit_refuses_a_name_another_batch_has(tmp_path: Path, sqlite_url: str) -> None:
    from ledger.db import upgrade_schema

    upgrade_schema(sqlite_url)
    add_batch(sqlite_url, "a" * 32, "nightly-2026-11-30", 1)
    env = {
        **os.environ,
        "BATCHROUTER_DATABASE_URL": sqlite_url,
        "BATCHROUTER_HOME": str(tmp_path),
        "BATCHROUTER_CONFIG": str(EXAMPLES / "routing.yaml"),
    }
    done = cli(
        "submit", str(tickets(tmp_path, 3)), "--type", "ticket_classification",
        "--name", "nightly-2026-11-30", env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "a batch named 'nightly-2026-11-30' already exists (" + "a" * 32 in done.stderr
    assert "choose another --name" in done.stderr.replace("\n", " ")
    shown = json.loads(cli("report", "--format", "json", env=env).stdout)
    assert shown["items"] == 0
