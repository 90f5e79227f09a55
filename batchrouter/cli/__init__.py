"""The command line: one module per command group, each with a `register(app)`.

Exit codes: 0 success; 1 the batch finished with failed items; 2 bad input, bad routing file,
unknown batch or wrong usage.
"""

from __future__ import annotations

import sys

import typer

from batchrouter.cli import batches, budget, cache, deferred, lifecycle, prices, reports, services
from batchrouter.cli.common import EXIT_BAD_INPUT, fail

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Send each LLM task to the cheapest tier its rules allow; escalate what fails its checks.",
    epilog="Exit codes: 0 ok; 1 the batch ended with failed items; "
    "2 bad input, bad routing file, unknown batch or wrong usage.",
)
# The order here is the order of `batchrouter --help`.
for group in (batches, services, lifecycle, budget, cache, deferred, reports, prices):
    group.register(app)


def main() -> None:
    from ledger.errors import LedgerSchemaError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except LedgerSchemaError as exc:
        fail(str(exc))
        sys.exit(EXIT_BAD_INPUT)
