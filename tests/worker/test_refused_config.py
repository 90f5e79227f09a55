"""A batch's routing file is stored in the ledger and read back by workers, so whoever can
write the ledger can change it after submit. A worker loads that copy under its own host's
rules (issue 13, section 3): a check off its allow-list, or a template outside the plain-{field}
rule, fails the batch's items with the reason; nothing is imported and nothing hangs."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ledger.batches import register_batch
from ledger.db import session_scope
from ledger.models import Attempt, Batch, Item
from routing.types import InputItem
from tests.conftest import CHECK_FIXTURES
from tests.routing.checkfixtures.import_marker import MARKER_ENV
from tests.routing.test_config import GOOD
from worker import pipeline

MARKER_MODULE = f"{CHECK_FIXTURES}.import_marker"
SUBMITTED = GOOD.replace("      - kind: label\n", f'      - {{kind: custom, function: "{CHECK_FIXTURES}:just_bool"}}\n      - kind: label\n')  # fmt: skip


@pytest.fixture
def ledger(use_ledger, sqlite_url: str, allow_checks, monkeypatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A SQLite ledger; this host allows one fixture check (not the marker module); the marker
    file the marker module would write on import."""
    use_ledger(sqlite_url)
    allow_checks(f"{CHECK_FIXTURES}:just_bool")
    marker = tmp_path / "imported.txt"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    sys.modules.pop(MARKER_MODULE, None)
    return marker


def submit_and_edit(edit: tuple[str, str]) -> tuple[str, list[int]]:
    """Register a batch under the good file (as submit does), then edit the stored copy."""
    items = [InputItem(external_id=str(n), text=f"ticket {n}", line_no=n) for n in (1, 2)]
    with session_scope() as session:
        batch_id, ids = register_batch(
            session, items=items, task_type="tickets", entry_tier="t0",
            config_yaml=SUBMITTED, config_source="rules.yaml",
        )  # fmt: skip
        stored = SUBMITTED.replace(*edit)
        assert stored != SUBMITTED
        session.execute(update(Batch).where(Batch.id == batch_id).values(config_yaml=stored))
    return batch_id, ids


def run_chunk(ids: list[int]) -> dict[int, Item]:
    summary = pipeline.process_chunk(ids, "t0", token=uuid.uuid4().hex)
    assert summary.claimed == summary.recorded == len(ids)
    with session_scope() as session:
        assert session.scalars(select(Attempt).where(Attempt.item_id.in_(ids))).all() == []
        return {i.id: i for i in session.scalars(select(Item).where(Item.id.in_(ids)))}


@pytest.mark.parametrize(
    "edited",
    ["shutil.rmtree", "os:system", f"{MARKER_MODULE}:check"],
)
def test_a_check_edited_into_the_ledger_copy_fails_the_items_and_is_never_imported(
    ledger: Path, edited: str
) -> None:
    batch_id, ids = submit_and_edit((f"{CHECK_FIXTURES}:just_bool", edited))
    items = run_chunk(ids)
    for item in items.values():
        assert item.state == "failed"
        assert "this worker refuses the batch's stored routing file" in (item.error or "")
        assert "rules.yaml:22: task_types.tickets.checks.0.function" in (item.error or "")
        assert f"{edited!r} is not allowed on this host" in (item.error or "")
    assert not ledger.exists() and MARKER_MODULE not in sys.modules
    with session_scope() as session:
        assert session.get(Batch, batch_id).finished_at is not None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "template", ["{text.__init__.__globals__}", "{text:>500000000}", "{unclosed {text}"]
)
def test_a_template_edited_into_the_ledger_copy_fails_the_items_instead_of_hanging(
    ledger: Path, template: str
) -> None:
    _batch_id, ids = submit_and_edit(('"Label: {text}"', f"'{template}'"))
    for item in run_chunk(ids).values():
        assert item.state == "failed"
        assert "rules.yaml:20: task_types.tickets.prompt: " in (item.error or "")


DEFERRED = f"""\
deployments:
  mini: {{provider: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:9/v1"}}
tiers:
  - {{name: nightly, deployments: [mini], deferred: true}}
task_types:
  tickets:
    ladder: [nightly]
    prompt: "Label: {{text}}"
    checks:
      - {{kind: custom, function: "{CHECK_FIXTURES}:just_bool"}}
"""


def test_the_deferred_poller_pauses_a_batch_whose_stored_file_is_refused(ledger: Path) -> None:
    """Staged items cannot be failed by a poller (no claim holds them): the batch is paused with
    the reason, for `status` to show, and nothing of the file is imported or sent."""
    from worker.deferred.poller import poll_once

    items = [InputItem(external_id="1", text="ticket", line_no=1)]
    with session_scope() as session:
        batch_id, ids = register_batch(
            session, items=items, task_type="tickets", entry_tier="nightly",
            config_yaml=DEFERRED.replace(f"{CHECK_FIXTURES}:just_bool", f"{MARKER_MODULE}:check"),
            config_source="rules.yaml",
        )  # fmt: skip
        session.execute(update(Item).where(Item.id.in_(ids)).values(state="deferred"))
    summary = poll_once(force=True)
    assert summary.formed == 0 and "routing file refused" in summary.errors[0]
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.state == "paused"
        assert "this host refuses the batch's stored routing file" in (batch.paused_reason or "")
        assert session.get(Item, ids[0]).state == "deferred"  # type: ignore[union-attr]
    assert not ledger.exists() and MARKER_MODULE not in sys.modules
