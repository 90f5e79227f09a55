"""What every command module shares: consoles, exit codes, and the error printer.

Loaded by the quick `status` path too (batchrouter/cli/quick.py), so it imports rich but not
typer: `fail` loads typer when a command fails.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    import typer

EXIT_FAILED_ITEMS = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3  # the ledger database or Redis cannot be reached
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the batch ended with failed items; "
    "2 bad input, bad routing file, unknown or ambiguous batch, or wrong usage; "
    "3 the ledger database or Redis cannot be reached; 130 interrupted."
)

# Off a terminal (a file, a pipe, a CI log) there is no width to fit: a table is as wide as
# its content, so no figure is ever cut to "…" (issue 19: `report --by batch > file`). Lines
# of prose are not wrapped there either.
UNLIMITED = 100_000


def _width(stream: object) -> int | None:
    isatty = getattr(stream, "isatty", None)
    return None if isatty is not None and isatty() else UNLIMITED


console = Console(width=_width(sys.stdout))
errors = Console(stderr=True, width=_width(sys.stderr))


def fail_line(message: str) -> None:
    """Print `message` as one error line on stderr."""
    # Text, not markup: a message may hold brackets ("[REDACTED]", "[a, b]").
    errors.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (code 2)."""
    import typer

    fail_line(message)
    return typer.Exit(EXIT_BAD_INPUT)
