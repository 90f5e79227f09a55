"""Submit a file as a batch: validate everything, register it in the ledger, then enqueue.

Order matters: the whole input and the routing file are checked before anything is written;
the ledger rows are committed before any message is published (a worker must find its items);
if publishing fails, the batch is removed again, so nothing is left half-enqueued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ledger.batches import refresh_item_statistics, register_batch
from ledger.db import session_scope, upgrade_schema
from ledger.models import Batch, Item
from producers.readers import InputError, read_items
from routing.config import ConfigError, RoutingConfig, TaskType, load_config
from routing.prompts import missing_fields
from routing.settings import get_settings
from routing.types import InputItem
from routing.yamlfile import read_text
from worker.publish import publish_items

log = logging.getLogger("batchrouter.submit")

# progress(stage, done, total): stage is "read", "ledger" or "publish"; done/total count items.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Submitted:
    batch_id: str
    items: int
    messages: int
    entry_tier: str
    duplicates: int = 0  # items waiting for an equal item of the batch (not published)


def submit_batch(
    path: str | Path,
    task_type: str,
    *,
    config: str | Path | None = None,
    name: str | None = None,
    project: str | None = None,
    callback_url: str | None = None,
    callback_task: str | None = None,
    budget_usd: float | None = None,
    progress: Progress | None = None,
) -> Submitted:
    """Register the items of a JSONL or CSV file as a batch and enqueue them on the entry tier."""
    settings = get_settings()
    config_path = Path(config or settings.config)
    routing = load_config(config_path)
    if task_type not in routing.task_types:
        known = ", ".join(sorted(routing.task_types))
        raise ConfigError(f"unknown task type {task_type!r}; {config_path} defines: {known}")
    task = routing.task_types[task_type]
    for tier in task.tier_names:  # fail now, not in a worker, when a price cannot be found
        for deployment in routing.tier(tier).deployments:
            try:
                routing.prices_for(deployment)
            except KeyError as exc:
                raise ConfigError(f"{config_path}: deployment {deployment!r}: {exc}") from None
    if budget_usd is not None and budget_usd < 0:
        raise ConfigError(f"a budget must be >= 0 USD, got {budget_usd}")
    report = progress or (lambda stage, done, total: None)
    items = read_items(path)
    _check_template_fields(routing, task_type, items, path, config_path)
    total = len(items)
    report("read", total, total)
    entry_tier = task.ladder[0].tier
    entry_tiers = _routed_entry_tiers(task, items, config_path)

    upgrade_schema()
    with session_scope() as session:
        batch_id, item_ids = register_batch(
            session,
            items=items,
            task_type=task_type,
            entry_tier=entry_tier,
            config_yaml=read_text(config_path),
            config_source=str(config_path),
            name=name,
            project=project,
            callback_url=callback_url,
            callback_task=callback_task,
            budget_usd=budget_usd,
            dedupe=task.cache,  # followers of a duplicate are not returned: never published
            entry_tiers=entry_tiers,
        )
        by_tier = {entry_tier: item_ids}
        if entry_tiers is not None:
            by_tier = _ids_by_tier(session, batch_id, item_ids)
    report("ledger", total, total)
    _refresh_statistics(batch_id)
    published = 0

    def on_publish(count: int) -> None:
        nonlocal published
        published += count
        report("publish", published, total)

    try:
        messages = sum(
            publish_items(ids, tier, settings.chunk_size, progress=on_publish)
            for tier, ids in by_tier.items()
        )
    except Exception as exc:
        # Workers that got a message for a removed item find nothing to claim.
        with session_scope() as session:
            session.execute(delete(Batch).where(Batch.id == batch_id))
        # No traceback here: the error is raised to the caller, which shows it (the CLI as one
        # line naming the broker when it cannot be reached).
        log.warning(
            "publishing batch %s failed (%s: %s); the batch was removed from the ledger",
            batch_id,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        raise
    return Submitted(
        batch_id=batch_id,
        items=total,
        messages=messages,
        entry_tier=entry_tier,
        duplicates=total - len(item_ids),
    )


def _refresh_statistics(batch_id: str) -> None:
    """Before the workers claim the new items: see ledger.batches.refresh_item_statistics. A
    failure (a lock wait timed out, a role that may not analyze) costs speed, not the batch."""
    try:
        with session_scope() as session:
            refresh_item_statistics(session)
    except Exception as exc:
        log.warning("batch %s: the items table's statistics were not refreshed (%s)", batch_id, exc)


def _routed_entry_tiers(
    task: TaskType, items: list[InputItem], config_path: Path
) -> list[str] | None:
    """Each item's first rung, when the task type names a fitted router with `skip_below`
    (routing/learned/entry.py); None when every item starts on the ladder's first rung.
    Every fitted artefact the task type names must load with its hash here, before anything
    is written: a missing or changed file would otherwise fail items in the workers."""
    from routing.checks import RouterScoreCheck
    from routing.learned.artefact import ArtefactError, load_artefact
    from routing.learned.entry import entry_tiers

    named = {
        (check.file, check.sha256)
        for tier in task.tier_names
        for check in task.checks_for(tier)
        if isinstance(check, RouterScoreCheck)
    }
    if task.router is not None:
        named.add((task.router.file, task.router.sha256))
    try:
        for file, sha256 in sorted(named):
            load_artefact(file, sha256)
        if task.router is None or task.router.skip_below is None:
            return None
        return entry_tiers(task.router, task.tier_names, [item.text for item in items])
    except ArtefactError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None


def _ids_by_tier(session: Session, batch_id: str, item_ids: list[int]) -> dict[str, list[int]]:
    wanted = set(item_ids)
    rows = session.execute(select(Item.id, Item.tier).where(Item.batch_id == batch_id))
    grouped: dict[str, list[int]] = {}
    for item_id, tier in sorted(rows):
        if item_id in wanted:
            grouped.setdefault(tier, []).append(item_id)
    return grouped


def _check_template_fields(
    routing: RoutingConfig,
    task_type: str,
    items: list[InputItem],
    path: str | Path,
    config_path: Path,
) -> None:
    """Every field the prompt names must come with every item: a typo'd {field} would reach
    the model as written, for every item of the batch."""
    needed = missing_fields(routing.task_types[task_type], {})  # the input fields it names
    for item in items if needed else []:
        absent = [name for name in needed if name not in item.fields]
        if absent:
            raise InputError(
                f"{path}:{item.line_no}: no field {absent[0]!r}, which the prompt of task "
                f"type {task_type!r} uses as {{{absent[0]}}} ({config_path})"
            )
