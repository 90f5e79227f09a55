"""batchrouter: send each LLM task to the cheapest tier its rules allow; escalate what fails.

from batchrouter import submit_batch, wait_for_batch, batch_report
submitted = submit_batch("tickets.jsonl", "ticket_classification")
wait_for_batch(submitted.batch_id)
print(batch_report(submitted.batch_id).saving_pct)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchrouter.api import (
        batch_report,
        batch_status,
        export_results,
        submit_batch,
        wait_for_batch,
    )

__all__ = ["batch_report", "batch_status", "export_results", "submit_batch", "wait_for_batch"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The API on first use (PEP 562): `batchrouter --help` and `status` must not pay for
    loading the submit path, the report queries and the broker client they never call."""
    if name in __all__:
        from batchrouter import api

        return getattr(api, name)
    raise AttributeError(f"module 'batchrouter' has no attribute {name!r}")
