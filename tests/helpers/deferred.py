"""Shared by the deferred-tier tests: a routing file over the fake server's batch APIs, and a
driver that polls provider batches until a batch ends."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select

from batchrouter.api import batch_status
from ledger.batches import BatchStatus
from ledger.db import session_scope
from ledger.models import Item
from providers.fake_server import FakeServerConfig
from worker.deferred.poller import poll_once
from worker.deferred.requests import parse_custom_id

LABELS = ["billing", "refund", "shipping"]
MODELS = {
    "openai": ("gpt-4o-mini", "gpt-4o"),
    "anthropic": ("claude-3-5-haiku", "claude-sonnet-4"),
}


def fake_config(processing_s: float = 0.3, expire_fraction: float = 0.0) -> FakeServerConfig:
    """The cheap model sometimes answers `unsure` (fails the label check, so it escalates);
    the premium model always answers a valid label."""
    cheap = {"mode": "label", "labels": [*LABELS, "unsure"]}
    premium = {"mode": "label", "labels": LABELS}
    return FakeServerConfig.model_validate(
        {
            "answers": {
                "gpt-4o-mini*": cheap,
                "claude-3-5-haiku*": cheap,
                "gpt-4o": premium,
                "claude-sonnet-4*": premium,
            },
            "batch": {"processing_s": processing_s, "expire_fraction": expire_fraction},
        }
    )


def routing_file(
    folder: Path,
    url: str,
    provider: str,
    *,
    premium_deferred: bool = False,
    collect_s: float = 0,
    max_requests: int = 50_000,
) -> Path:
    cheap, premium = MODELS[provider]
    base = f"{url}/v1" if provider == "openai" else url
    key_env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    text = f"""
deployments:
  cheap:
    provider: {provider}
    model: {cheap}
    api_base: {base}
    api_key_env: {key_env}
    max_output_tokens: 16
  premium:
    provider: {provider}
    model: {premium}
    api_base: {base}
    api_key_env: {key_env}
    max_output_tokens: 16
tiers:
  - name: nightly
    deployments: [cheap]
    deferred: true
    batch: {{collect_s: {collect_s}, max_requests: {max_requests}}}
  - name: premium
    deployments: [premium]
    deferred: {str(premium_deferred).lower()}
task_types:
  ticket_classification:
    ladder: [nightly, premium]
    system_prompt: Answer with one label.
    prompt: "Labels: {{labels}}\\nTicket: {{text}}\\nLabel:"
    checks:
      - kind: label
        labels: {json.dumps(LABELS)}
    cache: false
"""
    path = folder / f"routing-{provider}.yaml"
    path.write_text(text)
    return path


def tickets(folder: Path, count: int) -> Path:
    path = folder / "tickets.jsonl"
    with path.open("w") as out:
        for n in range(count):
            out.write(json.dumps({"id": f"t{n}", "text": f"ticket number {n}: where is my money"}))
            out.write("\n")
    return path


def drive(batch_id: str, timeout: float = 120, grace: float = 0.0) -> BatchStatus:
    """Poll provider batches (as beat would) until the batch has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll_once(force=True, submit_grace_s=grace)
        status = batch_status(batch_id)
        if status.finished:
            return status
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not finish: {batch_status(batch_id).by_state}")


def fake_stats(url: str) -> dict:
    return httpx.get(f"{url}/_stats", timeout=5).json()


def submissions_per_item_attempt(stats: dict) -> Counter[tuple[int, int]]:
    """How many times each (item, attempt number) was sent to a batch API, over every
    provider batch (a resubmission would carry a new provider batch id)."""
    counts: Counter[tuple[int, int]] = Counter()
    for custom_id, times in stats["batches"]["custom_ids"].items():
        parsed = parse_custom_id(custom_id)
        assert parsed is not None, custom_id
        counts[(parsed[1], parsed[2])] += times
    return counts


def wait_staged(batch_id: str, count: int, timeout: float = 60) -> None:
    """Until the workers have staged `count` items of the batch for a provider batch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(readonly=True) as session:
            staged = session.scalar(
                select(func.count()).where(Item.batch_id == batch_id, Item.state == "deferred")
            )
        if staged == count:
            return
        time.sleep(0.2)
    raise AssertionError(f"only {staged} of {count} items were staged")
