"""`make demo`: example tickets through three tiers, on nothing but Python.

It uses the embedded defaults (a SQLite ledger and a filesystem broker in .batchrouter/demo),
starts one real Celery worker process per tier, submits the tickets, shows progress, and prints
the cost report. No Redis, no PostgreSQL, no API key: the offline `sim` provider answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

EXAMPLES = Path("examples")
DEMO_HOME = Path(".batchrouter") / "demo"


def run_demo(items: int, console: Console) -> int:
    # The demo always runs on the embedded default, whatever the shell has set.
    for variable in ("BATCHROUTER_DATABASE_URL", "BATCHROUTER_BROKER_URL", "BATCHROUTER_CONFIG"):
        os.environ.pop(variable, None)
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    DEMO_HOME.mkdir(parents=True)
    os.environ["BATCHROUTER_HOME"] = str(DEMO_HOME)
    from routing.settings import get_settings

    get_settings.cache_clear()

    source = _subset(EXAMPLES / "tickets.jsonl", items)
    from batchrouter.api import batch_report, submit_batch
    from batchrouter.reports.progress import follow_batch
    from batchrouter.reports.terminal import print_report
    from routing.config import load_config

    tiers = [tier.name for tier in load_config(EXAMPLES / "routing.yaml").tiers]
    console.print(f"[bold]batchrouter demo[/]: {items} tickets, tiers {', '.join(tiers)}")
    console.print(
        f"ledger sqlite in {DEMO_HOME}/ledger.db, filesystem broker in {DEMO_HOME}/broker"
    )
    workers = [start_worker(tier, EXAMPLES / "routing.yaml", DEMO_HOME) for tier in tiers]
    try:
        submitted = submit_batch(source, "ticket_classification", name="demo")
        console.print(f"submitted batch {submitted.batch_id}: {submitted.messages} messages")
        status = follow_batch(submitted.batch_id, console=console, timeout=300)
        print_report(batch_report(submitted.batch_id), console)
        console.print(
            f"\nnext: [bold].venv/bin/batchrouter results {submitted.batch_id[:8]} --out results.jsonl[/]"
            f" (with BATCHROUTER_HOME={DEMO_HOME})"
        )
        console.print(_advice(submitted.batch_id), markup=False)
        return 0 if status.finished else 1
    finally:
        stop_processes(workers)


def _advice(batch_id: str) -> str:
    """The demo's last line: one piece of advice read from the batch's ledger."""
    try:
        from batchrouter.learning.quick import one_line_advice

        return one_line_advice(batch_id)
    except Exception as exc:  # advice must never fail the demo
        return f"advice: none ({type(exc).__name__}: {exc})"


def _subset(path: Path, items: int) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if items >= len(lines):
        return path
    subset = DEMO_HOME / f"tickets-{items}.jsonl"
    subset.write_text("".join(lines[:items]), encoding="utf-8")
    return subset


def start_worker(tier: str, config: Path, log_dir: Path) -> subprocess.Popen:
    """A real `batchrouter worker` process for `tier`, logging to <log_dir>/worker-<tier>.log."""
    log = open(log_dir / f"worker-{tier}.log", "wb")  # noqa: SIM115 - lives as long as the worker
    command = [sys.executable, "-m", "batchrouter", "worker", "--tier", tier]
    command += ["--config", str(config), "--concurrency", "4"]
    command += ["--loglevel", "WARNING"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def stop_processes(workers: list[subprocess.Popen]) -> None:
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in workers:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
