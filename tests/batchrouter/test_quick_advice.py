"""`make demo`'s last line: one piece of advice read from a batch's ledger, without fitting
(the hand-made ledger of tests/helpers/ledger_data.py)."""

from __future__ import annotations

from batchrouter.learning.quick import one_line_advice
from tests.helpers.ledger_data import fill_ledger


def test_a_rung_that_accepted_almost_nothing_is_worth_skipping(sqlite_url: str, use_ledger) -> None:  # type: ignore[no-untyped-def]
    use_ledger(sqlite_url)
    ids = fill_ledger()
    # beta: j1 climbed tier0 -> tier1 -> tier2; j2 passed on tier0. tier1 accepted none of
    # the one item that reached it.
    assert one_line_advice(ids["beta"]).startswith(
        "advice: skip rung tier1: it accepted 0% of the 1 items that reached it, for $"
    )
    # alpha: tier0 accepted i1 only (i2, i3, i4 climbed): 75% escalated; tier1 accepted half.
    assert one_line_advice(ids["alpha"]) == (
        "advice: rung tier0 escalates 75% of its items; with `expected` in the items, "
        f"`batchrouter advise ticket_classification --batch {ids['alpha'][:8]}` fits rules to "
        "cut that"
    )
