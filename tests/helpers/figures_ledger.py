"""A finished batch with one call of every kind, for tests/ledger/test_figures.py (issue 16).

Batch "figures" (ticket_classification on examples/routing.yaml; premium tier2 = sim-premium at
$2.50 / $10.00 per 1M tokens), no budget, so no worker tracked its spend call by call (its
batches.spent_usd stays 0, as on a real ledger). Attempts: (tier, outcome, failed check or
error class, input, cached, output, cost, latency ms, day, other columns).

  f1  billed: tier0 passed (1000 in, 200 cached, 100 cache writes, 50 out of which 20
      reasoning), $0.00123; then audited: the audit rung tier2 asked too (1000/50, $0.003,
      outcome `audit`, 700 ms)                                         -> succeeded on tier0
  f2  unbilled 429 (0 tokens, $0), then tier0 passed (800/40), $0.0009 -> succeeded on tier0
  f3  timeout billed at its estimate (1200 in, $0.0012, unconfirmed), tier0 label fail
      (1200/60, $0.0013), tier1 passed (1200/60, $0.0042)             -> succeeded on tier1
  f4  cache hit of f1's answer: f1's usage, $0, saved $0.00123          -> succeeded on tier0
  f5  deduplicated follower of f1: f1's usage, $0, saved $0.00123      -> succeeded on tier0
  f6  tier0 label fail (900/30, $0.0008), tier1 deferred passed in provider batch pb1
      (900/30, $0.0015 at batch prices, saved $0.0015)                 -> succeeded on tier1
  f7  consensus: tier0 passed (700/10, $0.0004), then its sample (700/12, $0.00041)
                                                                      -> succeeded on tier0
  f8  tier0, tier1, tier2 label fails (500/20 each: $0.0005, $0.002, $0.00145)
                                                                      -> failed on tier2
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.helpers.ledger_data import D1, fill

D = Decimal
F1_USAGE = {"cache_write_tokens": 100, "reasoning_tokens": 20}  # with 200 cached, positional


def _hit(saved: str) -> dict[str, Any]:
    return {"cache_hit": True, "saved_usd": D(saved), **F1_USAGE}


# An item answered with f1's answer without a call: cost 0, saved what f1 cost, f1's usage.
SERVED_F1 = (
    "figures",
    "succeeded",
    "tier0",
    None,
    "billing",
    [("tier0", "passed", None, 1000, 200, 50, D("0"), 0, D1, _hit("0.00123"))],
)
FIGURES: dict[str, tuple[Any, ...]] = {
    "f1": (
        "figures",
        "succeeded",
        "tier0",
        None,
        "billing",
        [
            ("tier0", "passed", None, 1000, 200, 50, D("0.00123"), 400, D1, F1_USAGE),
            ("tier2", "audit", None, 1000, 0, 50, D("0.003"), 700, D1),
        ],
    ),
    "f2": (
        "figures",
        "succeeded",
        "tier0",
        None,
        "billing",
        [
            ("tier0", "error", "rate_limit", 0, 0, 0, D("0"), 100, D1),
            ("tier0", "passed", None, 800, 0, 40, D("0.0009"), 300, D1),
        ],
    ),
    "f3": (
        "figures",
        "succeeded",
        "tier1",
        None,
        "refund_request",
        [
            (
                "tier0",
                "error",
                "timeout",
                1200,
                0,
                0,
                D("0.0012"),
                30000,
                D1,
                {"usage_estimated": True},
            ),
            ("tier0", "check_failed", "label", 1200, 0, 60, D("0.0013"), 500, D1),
            ("tier1", "passed", None, 1200, 0, 60, D("0.0042"), 900, D1),
        ],  # fmt: skip
    ),
    "f4": SERVED_F1,  # from the response cache
    "f5": SERVED_F1,  # by its leader f1 (in-batch deduplication): the same row
    "f6": (
        "figures",
        "succeeded",
        "tier1",
        None,
        "shipping_delay",
        [
            ("tier0", "check_failed", "label", 900, 0, 30, D("0.0008"), 200, D1),
            (
                "tier1",
                "passed",
                None,
                900,
                0,
                30,
                D("0.0015"),
                60000,
                D1,
                {"provider_batch_id": "pb1", "saved_usd": D("0.0015")},
            ),
        ],  # fmt: skip
    ),
    "f7": (
        "figures",
        "succeeded",
        "tier0",
        None,
        "billing",
        [
            ("tier0", "passed", None, 700, 0, 10, D("0.0004"), 250, D1),
            ("tier0", "sample", None, 700, 0, 12, D("0.00041"), 260, D1),
        ],
    ),
    "f8": (
        "figures",
        "failed",
        "tier2",
        None,
        "too vague",
        [
            ("tier0", "check_failed", "label", 500, 0, 20, D("0.0005"), 150, D1),
            ("tier1", "check_failed", "label", 500, 0, 20, D("0.002"), 600, D1),
            ("tier2", "check_failed", "label", 500, 0, 20, D("0.00145"), 1000, D1),
        ],
    ),
}
FIGURES_BATCHES = {"figures": ("f" * 32, "ticket_classification")}


def fill_figures_ledger() -> str:
    """Insert the batch above into the current database; return its id."""
    return fill(FIGURES, FIGURES_BATCHES)["figures"]
