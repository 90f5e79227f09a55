"""Batch lifecycle from the command line: pause, resume, cancel, retry failed, completion notice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from batchrouter.api import batch_status, submit_batch, wait_for_batch
from tests.conftest import EXAMPLES, ROOT
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]
LADDER = ["tier0", "tier1", "tier2"]


@pytest.fixture
def env(sqlite_url: str, redis_url: str, use_ledger, tmp_path: Path) -> dict[str, str]:
    use_ledger(sqlite_url)
    return {
        **os.environ,
        "BATCHROUTER_DATABASE_URL": sqlite_url,
        "BATCHROUTER_BROKER_URL": redis_url,
        "BATCHROUTER_HOME": str(tmp_path / "home"),
    }


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchrouter", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def tickets(tmp_path: Path, count: int) -> Path:
    path = tmp_path / f"tickets-{count}.jsonl"
    path.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:count]))
    return path


def test_pause_holds_the_batch_and_resume_finishes_it(env, tmp_path: Path) -> None:
    submitted = submit_batch(tickets(tmp_path, 100), "ticket_classification")
    paused = cli("pause", submitted.batch_id, "--reason", "waiting for approval", env=env)
    assert paused.returncode == 0, paused.stderr
    urls = dict(
        database_url=env["BATCHROUTER_DATABASE_URL"], broker_url=env["BATCHROUTER_BROKER_URL"]
    )
    with running_workers(LADDER, log_dir=tmp_path, **urls):
        time.sleep(4)  # the workers take the messages and must leave the items alone
        held = batch_status(submitted.batch_id)
        assert held.by_state == {"queued": 100} and held.state == "paused"
        shown = cli("status", submitted.batch_id, env=env)
        assert "batch is paused: waiting for approval" in shown.stdout
        resumed = cli("resume", submitted.batch_id, env=env)
        assert resumed.returncode == 0 and "100 queued items republished" in resumed.stderr
        status = wait_for_batch(submitted.batch_id, timeout=120)
    assert status.done == 100 and status.state == "finished"  # resumed, then every item ended


def test_cancel_drops_queued_items_and_ends_the_batch(env, tmp_path: Path) -> None:
    submitted = submit_batch(tickets(tmp_path, 60), "ticket_classification")
    result = cli("cancel", submitted.batch_id, env=env)
    assert result.returncode == 0 and "60 queued items dropped" in result.stderr
    status = batch_status(submitted.batch_id)
    assert status.finished and status.by_state == {"cancelled": 60} and status.state == "cancelled"
    assert cli("cancel", "no-such-batch", env=env).returncode == 2


def test_failed_items_are_listed_and_retried_with_a_fresh_attempt_cap(env, tmp_path: Path) -> None:
    hopeless = tmp_path / "rules.yaml"
    text = (EXAMPLES / "routing.yaml").read_text()
    hopeless.write_text(
        text.replace("skill: 0.97", "skill: 0.0")
        .replace("skill: 0.72", "skill: 0.0")
        .replace("skill: 0.86", "skill: 0.0")
    )
    urls = dict(
        database_url=env["BATCHROUTER_DATABASE_URL"], broker_url=env["BATCHROUTER_BROKER_URL"]
    )
    submitted = submit_batch(tickets(tmp_path, 20), "ticket_classification", config=hopeless)
    with running_workers(LADDER, log_dir=tmp_path, config=hopeless, **urls):
        waited = cli(
            "submit", str(tickets(tmp_path, 20)), "--type", "ticket_classification",
            "--config", str(hopeless), "--wait", env=env,
        )  # fmt: skip
        assert waited.returncode == 1, waited.stderr  # the batch ended with failed items
        first = wait_for_batch(submitted.batch_id, timeout=120)
        dead = cli("status", submitted.batch_id, "--failed", "--format", "json", env=env)
        listed = json.loads(dead.stdout)
        retried = cli("retry", submitted.batch_id, "--failed", env=env)
        assert retried.returncode == 0, retried.stderr
        time.sleep(0.5)
        second = wait_for_batch(submitted.batch_id, timeout=120)
    wrong = [row for row in listed if row["error"] and "labels" in row["error"]]
    assert first.failed > 0 and len(listed) == first.failed and wrong
    assert all(row["tier"] and row["attempts"] >= 1 for row in listed)
    assert second.finished and second.done == 20
    from ledger.db import session_scope
    from ledger.models import Item

    with session_scope() as session:
        retried_items = [
            i for i in session.query(Item).filter(Item.batch_id == submitted.batch_id)
            if i.retry_base > 0
        ]  # fmt: skip
    assert len(retried_items) == first.failed
    assert all(i.attempts > i.retry_base for i in retried_items)  # they were called again


def test_a_finished_batch_posts_its_notice(env, tmp_path: Path) -> None:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/done?token=s3cret"
    urls = dict(
        database_url=env["BATCHROUTER_DATABASE_URL"], broker_url=env["BATCHROUTER_BROKER_URL"]
    )
    try:
        with running_workers(LADDER, log_dir=tmp_path, **urls):
            cli_submit = cli(
                "submit", str(tickets(tmp_path, 50)), "--type", "ticket_classification",
                "--on-done-url", url, env=env,
            )  # fmt: skip
            assert cli_submit.returncode == 0, cli_submit.stderr
            batch_id = cli_submit.stdout.strip()
            wait_for_batch(batch_id, timeout=120)
            deadline = time.monotonic() + 20
            while not received and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        server.shutdown()
    assert len(received) == 1, "exactly one worker sends the notice"
    notice = received[0]
    assert notice["event"] == "batch.finished" and notice["batch_id"] == batch_id
    assert notice["done"] == 50


def test_beat_reconciles_through_the_control_queue(env, tmp_path: Path) -> None:
    import redis

    from worker.app import app
    from worker.queues import CONTROL_QUEUE

    schedule = app.conf.beat_schedule["reconcile"]
    assert schedule["task"] == "batchrouter.reconcile"
    assert schedule["options"]["queue"] == CONTROL_QUEUE

    submitted = submit_batch(tickets(tmp_path, 40), "ticket_classification")
    redis.Redis.from_url(env["BATCHROUTER_BROKER_URL"]).delete("tier0")  # the queue is lost
    urls = dict(
        database_url=env["BATCHROUTER_DATABASE_URL"], broker_url=env["BATCHROUTER_BROKER_URL"]
    )
    with running_workers(LADDER, log_dir=tmp_path, **urls):
        time.sleep(2)
        assert batch_status(submitted.batch_id).by_state == {"queued": 40}  # nothing to take
        app.send_task(
            "batchrouter.reconcile", kwargs={"queued_grace_s": 0.0}, queue=CONTROL_QUEUE
        )  # what beat sends every BATCHROUTER_RECONCILE_INTERVAL seconds
        status = wait_for_batch(submitted.batch_id, timeout=120)
    assert status.done == 40
