"""Issue 19: at the default level (INFO) a worker's log stays under 20 bytes per item on the
benchmark batch: full chunks answered on the entry tier.

Real workers, one per tier, run a batch of a few hundred items (the `sim` provider, its entry
model always right, as S1d's fake provider is) and the bytes they log after their start-up
banner (from Celery's "ready." line on) are counted; a per-call INFO line (about 140 bytes an
item before issue 19) would show at once. What remains is per message: Celery's "received" and
"succeeded" lines and our chunk line, about 330 bytes, so a cascade whose escalations travel in
small chunks logs more per item (about 33 bytes with the example's skills; docs/operations.md,
"Logs"). The benchmark's figure, over 2,000 items on the fake provider, is S1d in
docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrouter.api import submit_batch, wait_for_batch
from tests.conftest import EXAMPLES
from tests.helpers.workers import running_workers

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]
LADDER = ["tier0", "tier1", "tier2"]
ITEMS = 400
BAR_BYTES_PER_ITEM = 20


def logged_after_ready(path: Path) -> int:
    text = path.read_bytes()
    ready = text.find(b" ready.")
    assert ready >= 0, f"{path.name} never got ready:\n{text.decode(errors='replace')}"
    return len(text) - (text.index(b"\n", ready) + 1)


def test_workers_log_under_20_bytes_per_item_at_info(
    tmp_path: Path, sqlite_url: str, redis_url: str, use_ledger
) -> None:
    use_ledger(sqlite_url)
    config = tmp_path / "rules.yaml"  # the entry model always answers right: no escalation
    config.write_text((EXAMPLES / "routing.yaml").read_text().replace("skill: 0.72", "skill: 1.0"))
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:ITEMS]))
    with running_workers(
        LADDER, database_url=sqlite_url, broker_url=redis_url, log_dir=tmp_path, config=config
    ):  # --loglevel INFO, BATCHROUTER_LOG_CALLS unset: the defaults
        submitted = submit_batch(source, "ticket_classification", config=config)
        final = wait_for_batch(submitted.batch_id, timeout=240)
        assert final.done == ITEMS
        logged = {tier: logged_after_ready(tmp_path / f"worker-{tier}.log") for tier in LADDER}
    per_item = sum(logged.values()) / ITEMS
    print(f"\nworker logs at INFO: {logged} bytes, {per_item:.1f} bytes per item")
    assert per_item < BAR_BYTES_PER_ITEM, logged
