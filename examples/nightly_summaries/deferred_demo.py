"""Two nights of deferred summaries, end to end against the fake provider's batch APIs.

    python -m examples.nightly_summaries.deferred_demo          (or `make demo-deferred`)

Night 1 sends the 60 example documents through OpenAI's Batch API (gpt-4o-mini), escalates the
summaries that fail the length check to Anthropic Message Batches (claude-3-5-haiku) and what
still fails to gpt-4o, immediately. Night 2 submits the same documents: the response cache
answers them, at no cost. The report after each night splits the saving into routing, deferral
and cache. Runs on nothing but Python: a SQLite ledger and the filesystem broker in
.batchrouter/deferred-demo, real worker processes, the fake provider on a free port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
HOME = Path(".batchrouter") / "deferred-demo"
PLACEHOLDER_BASE = "http://127.0.0.1:8199"


def main() -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    for variable in ("BATCHROUTER_DATABASE_URL", "BATCHROUTER_BROKER_URL", "BATCHROUTER_CONFIG"):
        os.environ.pop(variable, None)
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    os.environ["BATCHROUTER_HOME"] = str(HOME)
    # The fake provider checks no key; the adapters still want the variables to exist.
    os.environ.setdefault("OPENAI_API_KEY", "sk-demo-not-a-real-key")
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-demo-not-a-real-key")

    from batchrouter.demo import start_worker, stop_processes
    from providers.fake_server import free_port
    from routing.config import load_config

    port = free_port()
    routing = HOME / "deferred.yaml"
    text = (HERE / "deferred.yaml").read_text(encoding="utf-8")
    routing.write_text(text.replace(PLACEHOLDER_BASE, f"http://127.0.0.1:{port}"))
    provider = _start_fake_provider(port)
    tiers = [tier.name for tier in load_config(routing).tiers]
    workers = [start_worker(tier, routing, HOME) for tier in tiers]
    try:
        ok = all(_night(night, routing, console) for night in (1, 2))
        return 0 if ok else 1
    finally:
        stop_processes([*workers, provider])


def _night(night: int, routing: Path, console: Console) -> bool:
    from batchrouter.api import batch_report, batch_status, submit_batch
    from batchrouter.reports.terminal import print_report
    from worker.deferred.poller import poll_once

    submitted = submit_batch(
        EXAMPLES / "documents.jsonl", "summarization", config=routing,
        name=f"night-{night}", project="nightly",
    )  # fmt: skip
    console.print(
        f"\n[bold]night {night}[/]: {submitted.items} documents, batch {submitted.batch_id[:8]}"
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        # What beat does every BATCHROUTER_DEFERRED_POLL_INTERVAL seconds in production.
        summary = poll_once(submit_grace_s=0)
        status = batch_status(submitted.batch_id)
        if summary.formed or summary.submitted or summary.ingested:
            console.print(
                f"  provider batches: {summary.formed} formed, {summary.submitted} submitted, "
                f"{summary.ingested} ingested; items {dict(sorted(status.by_state.items()))}"
            )
        if status.finished:
            print_report(batch_report(submitted.batch_id), console)
            return True
        time.sleep(0.5)
    console.print(
        f"[red]night {night} did not finish[/]: {batch_status(submitted.batch_id).by_state}"
    )
    return False


def _start_fake_provider(port: int) -> subprocess.Popen:
    log = open(HOME / "fake-provider.log", "wb")  # noqa: SIM115 - lives as long as the server
    command = [sys.executable, "-m", "batchrouter", "fake-provider", "--port", str(port)]
    command += ["--config", str(HERE / "fake-provider.yaml")]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(
        "the fake provider did not start; see .batchrouter/deferred-demo/fake-provider.log"
    )


if __name__ == "__main__":
    sys.exit(main())
