"""`batchrouter budget`: show or set a batch's or a project's budget; raising one resumes the
batches it had paused."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from batchrouter.cli.common import errors, fail

if TYPE_CHECKING:
    from ledger.models import Batch, ProjectBudget


def _line(what: str, budget: Decimal | None, spent: Decimal, reserved: Decimal) -> str:
    from ledger.budgets import usd

    limit = "unlimited" if budget is None else usd(budget)
    return f"{what}: budget {limit}, spent {usd(spent)}, reserved {usd(max(reserved, Decimal(0)))}"


def _has_room(budget: Decimal | None, spent: Decimal, reserved: Decimal) -> bool:
    return budget is None or spent + max(reserved, Decimal(0)) < budget


def budget(
    batch: Annotated[
        str | None, typer.Argument(help="batch id, id prefix or name (or use --project)")
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="the project tag's budget, shared by its batches")
    ] = None,
    set_usd: Annotated[
        float | None, typer.Option("--set", help="the new budget in USD", min=0)
    ] = None,
    unlimited: Annotated[bool, typer.Option("--unlimited", help="remove the budget")] = False,
) -> None:
    """Show or set the budget of a batch or of a project tag. Raising a budget resumes the
    batches it had paused."""
    if (batch is None) == (project is None):
        raise fail("name either a BATCH or --project TAG")
    if set_usd is not None and unlimited:
        raise fail("--set and --unlimited exclude each other")
    change = set_usd is not None or unlimited
    from ledger.batches import UnknownBatch
    from ledger.budgets import (
        paused_for_budget,
        release_expired,
        set_batch_budget,
        set_project_budget,
    )
    from ledger.db import session_scope, upgrade_schema
    from ledger.lifecycle import resume_batch
    from ledger.models import ProjectBudget

    upgrade_schema()
    from batchrouter.cli.lifecycle import _publish

    try:
        with session_scope() as session:
            release_expired(session)  # holds of calls whose worker died: not live any more
            if batch is not None:
                row: Batch | ProjectBudget | None
                if change:
                    row = set_batch_budget(session, batch, set_usd)
                else:
                    from ledger.batches import find_batch

                    row = find_batch(session, batch)
                what, scope, name = f"batch {row.id}", "batch", row.id
            else:
                assert project is not None
                if change:
                    row = set_project_budget(session, project, set_usd)
                else:
                    row = session.get(ProjectBudget, project)
                what, scope, name = f"project {project}", "project", project
            if row is None:
                errors.print(f"{what}: no budget (unlimited)")
                return
            figures = (row.budget_usd, row.spent_usd, row.reserved_usd)
            paused = paused_for_budget(session, scope, name) if change else []
            resumes = bool(paused) and _has_room(*figures)
            waiting: dict[str, list[int]] = {}
            for batch_id in paused if resumes else []:
                for tier, ids in resume_batch(session, batch_id).items():
                    waiting.setdefault(tier, []).extend(ids)
    except UnknownBatch as exc:
        raise fail(str(exc.args[0])) from None
    errors.print(_line(what, *figures))
    if resumes:  # published after the commit: a worker must find the batch running
        count = _publish(waiting)
        errors.print(f"resumed {len(paused)} paused batches: {count} queued items republished")
    elif paused:
        errors.print(f"still exhausted: {len(paused)} paused batches stay paused")


def register(app: typer.Typer) -> None:
    app.command()(budget)
