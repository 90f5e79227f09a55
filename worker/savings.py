"""The saving rate's denominator, live: what settled items would have cost on the premium tier.

The report prices premium-only per item from the ledger (ledger/report.py: the first attempt's
input and the last attempt's output at the first deployment of the task type's last tier). A
worker sees one round of an item, so it prices the call that settled it (its input and output
tokens) at those same prices, and the dashboard's saving rate is
`1 - rate(batchrouter_cost_usd_total) / rate(batchrouter_premium_equivalent_usd_total)`:
an estimate of the report's figure over a time window, not a replacement for it.
"""

from __future__ import annotations

from ledger.models import ItemState
from ledger.outcomes import ItemOutcome
from routing.config import RoutingConfig

_SETTLED = (ItemState.SUCCEEDED.value, ItemState.FAILED.value)


def premium_equivalent_usd(outcome: ItemOutcome, config: RoutingConfig, task_type: str) -> float:
    """USD the item's settling call would have cost at its premium tier; 0 unless settled."""
    if outcome.next_state not in _SETTLED or not outcome.attempts:
        return 0.0
    last = outcome.attempts[-1]
    try:
        ladder = config.task_type(task_type).tier_names
        prices = config.prices_for(config.tier(ladder[-1]).deployments[0])
    except (KeyError, IndexError):  # a model missing from the price table: no figure, no crash
        return 0.0
    return (last.input_tokens * prices.input + last.output_tokens * prices.output) / 1_000_000
