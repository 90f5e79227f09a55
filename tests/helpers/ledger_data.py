"""A small hand-made ledger whose report figures are worked out by hand in test_report.py.

Two batches on the example routing file (premium tier2 = sim-premium at $2.50 / $10.00 per 1M
tokens), attempts on two days:

alpha (project alpha, ticket_classification)
  i1  tier0 passed                                               -> succeeded on tier0
  i2  tier0 label fail, tier1 passed                             -> succeeded on tier1
  i3  tier0 rate_limit error, tier0 label fail, tier1 label fail,
      tier2 passed                                               -> succeeded on tier2
  i4  tier0 label fail                                           -> queued on tier1
  i5  (never attempted)                                          -> queued on tier0
beta (project beta, summarization)
  j1  tier0, tier1, tier2 length fails                           -> failed on tier2
  j2  tier0 passed                                               -> succeeded on tier0

A second ledger, LEVER_LEDGER (fill_lever_ledger), adds the cost levers (cache hits, deferred
calls); its savings split is worked out by hand in test_report_levers.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.db import session_scope
from ledger.models import Attempt, Batch, Item
from tests.conftest import EXAMPLES

D1 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
D2 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DEPLOYMENTS = {"tier0": "sim-nano", "tier1": "sim-mini", "tier2": "sim-premium"}

# item: (batch, state, final tier, expected, output, [attempts])
# attempt: (tier, outcome, failed check or error class, in, cached, out, cost, latency ms, day)
LEDGER = {
    "i1": (
        "alpha",
        "succeeded",
        "tier0",
        "billing",
        "billing",
        [("tier0", "passed", None, 1000, 0, 10, 0.001, 100, D1)],
    ),
    "i2": (
        "alpha",
        "succeeded",
        "tier1",
        "refund_request",
        "billing",
        [
            ("tier0", "check_failed", "label", 2000, 0, 20, 0.002, 200, D1),
            ("tier1", "passed", None, 2000, 500, 30, 0.004, 300, D1),
        ],
    ),
    "i3": (
        "alpha",
        "succeeded",
        "tier2",
        None,
        "shipping_delay",
        [
            ("tier0", "error", "rate_limit", 0, 0, 0, 0.0, 50, D1),
            ("tier0", "check_failed", "label", 1500, 0, 15, 0.0015, 150, D2),
            ("tier1", "check_failed", "label", 1500, 0, 15, 0.003, 350, D2),
            ("tier2", "passed", None, 1500, 0, 15, 0.0055, 900, D2),
        ],
    ),
    "i4": (
        "alpha",
        "queued",
        "tier1",
        None,
        None,
        [("tier0", "check_failed", "label", 1200, 0, 12, 0.0012, 120, D2)],
    ),
    "i5": ("alpha", "queued", "tier0", None, None, []),
    "j1": (
        "beta",
        "failed",
        "tier2",
        None,
        "too short",
        [
            ("tier0", "check_failed", "length", 4000, 0, 100, 0.004, 400, D2),
            ("tier1", "check_failed", "length", 4000, 0, 100, 0.008, 600, D2),
            ("tier2", "check_failed", "length", 4000, 0, 100, 0.02, 1200, D2),
        ],
    ),
    "j2": (
        "beta",
        "succeeded",
        "tier0",
        None,
        "a fine summary",
        [("tier0", "passed", None, 3000, 0, 80, 0.003, 250, D2)],
    ),
}
BATCHES = {
    "alpha": ("alpha" + "0" * 27, "ticket_classification"),
    "beta": ("beta" + "0" * 28, "summarization"),
}


# An attempt may carry a tenth element: its cost-lever columns (cache_hit, provider_batch_id,
# saved_usd). A cache hit costs 0 and keeps the tokens of the call it reused.
def _cached(saved: float, provider_batch_id: str | None = None) -> dict[str, Any]:
    return {"cache_hit": True, "provider_batch_id": provider_batch_id, "saved_usd": saved}


def _deferred(saved: float) -> dict[str, Any]:
    return {"provider_batch_id": "pb1", "saved_usd": saved}


# gamma (project gamma, ticket_classification): every lever
#   k1  tier0 passed                                        (10000 in, 100 out, $0.001)
#   k2  tier0 cache hit of k1's answer                      (saved $0.001)
#   k3  tier0 label fail, tier1 deferred passed             (saved $0.002 on tier1)
#   k4  tier0 fail, tier1 deferred fail, tier2 passed       (saved $0.0015 on tier1)
#   k5  tier0 fail, tier1 cache hit of k3's deferred answer (saved $0.002; in pb1, not deferred)
# delta (project delta, summarization): escalations dearer than premium-only
#   m1  tier0 fail, tier1 fail, tier2 passed                (1000 in, 10 out, $0.06 in all)
LEVER_LEDGER: dict[str, tuple[Any, ...]] = {
    "k1": (
        "gamma",
        "succeeded",
        "tier0",
        None,
        "billing",
        [("tier0", "passed", None, 10000, 0, 100, 0.001, 100, D1)],
    ),
    "k2": (
        "gamma",
        "succeeded",
        "tier0",
        None,
        "billing",
        [("tier0", "passed", None, 10000, 0, 100, 0.0, 1, D1, _cached(0.001))],
    ),
    "k3": (
        "gamma",
        "succeeded",
        "tier1",
        None,
        "refund_request",
        [
            ("tier0", "check_failed", "label", 2000, 0, 20, 0.002, 200, D1),
            ("tier1", "passed", None, 2000, 0, 30, 0.002, 300, D1, _deferred(0.002)),
        ],
    ),
    "k4": (
        "gamma",
        "succeeded",
        "tier2",
        None,
        "shipping_delay",
        [
            ("tier0", "check_failed", "label", 1500, 0, 15, 0.0015, 150, D1),
            ("tier1", "check_failed", "label", 1500, 0, 15, 0.0015, 350, D1, _deferred(0.0015)),
            ("tier2", "passed", None, 1500, 0, 15, 0.0055, 900, D1),
        ],
    ),
    "k5": (
        "gamma",
        "succeeded",
        "tier1",
        None,
        "refund_request",
        [
            ("tier0", "check_failed", "label", 2000, 0, 20, 0.002, 200, D1),
            ("tier1", "passed", None, 2000, 0, 30, 0.0, 1, D1, _cached(0.002, "pb1")),
        ],
    ),
    "m1": (
        "delta",
        "succeeded",
        "tier2",
        None,
        "a summary",
        [
            ("tier0", "check_failed", "length", 1000, 0, 10, 0.01, 100, D1),
            ("tier1", "check_failed", "length", 1000, 0, 10, 0.02, 100, D1),
            ("tier2", "passed", None, 1000, 0, 10, 0.03, 100, D1),
        ],
    ),
}
LEVER_BATCHES = {
    "gamma": ("gamma" + "0" * 27, "ticket_classification"),
    "delta": ("delta" + "0" * 27, "summarization"),
}


def fill_ledger() -> dict[str, str]:
    """Insert the ledger above into the current database; return batch name -> id."""
    return fill(LEDGER, BATCHES)


def fill_lever_ledger() -> dict[str, str]:
    """Insert the cost-lever ledger into the current database; return batch name -> id."""
    return fill(LEVER_LEDGER, LEVER_BATCHES)


def fill(ledger: dict[str, tuple[Any, ...]], batches: dict[str, tuple[str, str]]) -> dict[str, str]:
    config = (EXAMPLES / "routing.yaml").read_text()
    with session_scope() as session:
        for name, (batch_id, task_type) in batches.items():
            items = sum(1 for row in ledger.values() if row[0] == name)
            session.add(
                Batch(
                    id=batch_id,
                    name=name,
                    task_type=task_type,
                    project=name,
                    config_yaml=config,
                    config_source="routing.yaml",
                    total=items,
                    done=0,
                    created_at=D1,
                )
            )
        session.flush()
        for line_no, (key, (batch, state, tier, expected, output, attempts)) in enumerate(
            ledger.items(), start=1
        ):
            batch_id = batches[batch][0]
            item = Item(
                batch_id=batch_id,
                external_id=key,
                line_no=line_no,
                text=f"text of {key}",
                expected=expected,
                fields={},
                state=state,
                tier=tier,
                attempts=len(attempts),
                cost_usd=sum(a[6] for a in attempts),
                output=output,
                deployment=DEPLOYMENTS[tier] if output else None,
                model=DEPLOYMENTS[tier] if output else None,
                error="length check failed" if state == "failed" else None,
            )
            session.add(item)
            session.flush()
            for number, (a_tier, outcome, why, i, c, o, cost, ms, day, *lever) in enumerate(
                attempts, start=1
            ):
                verdicts = []
                if outcome != "error":
                    verdicts = [
                        {"check": "non_empty", "passed": True, "reason": "ok", "score": 1.0},
                        {
                            "check": why or "label",
                            "passed": outcome == "passed",
                            "reason": "ok" if outcome == "passed" else f"{why} check said no",
                            "score": 1.0 if outcome == "passed" else 0.0,
                        },
                    ]
                session.add(
                    Attempt(
                        item_id=item.id,
                        batch_id=batch_id,
                        attempt_no=number,
                        tier=a_tier,
                        deployment=DEPLOYMENTS[a_tier],
                        provider="sim",
                        model=DEPLOYMENTS[a_tier],
                        input_tokens=i,
                        cached_input_tokens=c,
                        output_tokens=o,
                        cost_usd=cost,
                        latency_ms=float(ms),
                        outcome=outcome,
                        verdicts=verdicts,
                        error_class=why if outcome == "error" else None,
                        error_message="429 slow down" if outcome == "error" else None,
                        output=output,
                        created_at=day,
                        **(lever[0] if lever else {}),
                    )
                )
    return {name: batch_id for name, (batch_id, _) in batches.items()}
