"""The typer application: every command group, in the order of `batchrouter --help`."""

from __future__ import annotations

import typer

from batchrouter.cli import (
    batches,
    budget,
    cache,
    deferred,
    learning,
    lifecycle,
    prices,
    reports,
    services,
)
from batchrouter.cli.common import EXIT_CODES_HELP

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Send each LLM task to the cheapest tier its rules allow; escalate what fails its checks.",
    epilog=EXIT_CODES_HELP,
)
for group in (batches, services, lifecycle, budget, cache, deferred, reports, prices, learning):
    group.register(app)
