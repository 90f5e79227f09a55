"""The answers earlier rounds bought for claimed items: the votes a consensus counts.

Read in the claim's transaction, for the items whose rung counts votes and that had calls
before: every attempt that gave an answer (passed, check_failed or sample; cache hits
included), oldest first, outside the round a dead claim left unfinished (that round's records
come back to the new round itself: ledger/journal.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.cache import ANSWERED
from ledger.models import Attempt
from ledger.outcomes import ClaimedItem
from routing.votes import Vote


def earlier_votes(session: Session, items: Sequence[ClaimedItem]) -> dict[int, tuple[Vote, ...]]:
    """item id -> its votes from earlier rounds (items without any are left out)."""
    ids = [item.id for item in items if item.attempts or item.attempt_no_base]
    if not ids:
        return {}
    dead = {(item.id, r.attempt_no) for item in items for r in item.dead_round}
    rows = session.execute(
        select(Attempt.item_id, Attempt.attempt_no, Attempt.deployment, Attempt.output)
        .where(
            Attempt.item_id.in_(ids),
            Attempt.outcome.in_(ANSWERED),
            Attempt.error_class.is_(None),
            Attempt.output.is_not(None),
        )
        .order_by(Attempt.item_id, Attempt.attempt_no)
    ).all()
    votes: dict[int, list[Vote]] = {}
    for item_id, attempt_no, deployment, output in rows:
        if (item_id, attempt_no) not in dead and output is not None:
            votes.setdefault(item_id, []).append(Vote(deployment, output))
    return {item_id: tuple(found) for item_id, found in votes.items()}
