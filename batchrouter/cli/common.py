"""What every command module shares: consoles, exit codes, and the error printer."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

EXIT_FAILED_ITEMS = 1
EXIT_BAD_INPUT = 2

# Off a terminal (a file, a pipe, a CI log) there is no width to fit: a table is as wide as
# its content, so no figure is ever cut to "…" (issue 19: `report --by batch > file`). Lines
# of prose are not wrapped there either.
UNLIMITED = 100_000


def _width(stream: object) -> int | None:
    isatty = getattr(stream, "isatty", None)
    return None if isatty is not None and isatty() else UNLIMITED


console = Console(width=_width(sys.stdout))
errors = Console(stderr=True, width=_width(sys.stderr))


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (code 2)."""
    # Text, not markup: a message may hold brackets ("[REDACTED]", "[a, b]").
    errors.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)
