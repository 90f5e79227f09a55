"""batchrouter: send each LLM task to the cheapest tier its rules allow; escalate what fails.

from batchrouter import submit_batch, wait_for_batch, batch_report
submitted = submit_batch("tickets.jsonl", "ticket_classification")
wait_for_batch(submitted.batch_id)
print(batch_report(submitted.batch_id).saving_pct)
"""

from batchrouter.api import (
    batch_report,
    batch_status,
    export_results,
    submit_batch,
    wait_for_batch,
)

__all__ = ["batch_report", "batch_status", "export_results", "submit_batch", "wait_for_batch"]
__version__ = "0.1.0"
