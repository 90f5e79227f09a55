"""What every command module shares: consoles, exit codes, and the error printer."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

EXIT_FAILED_ITEMS = 1
EXIT_BAD_INPUT = 2

# Piped output (CI logs, files) gets a width that fits the report's tables.
console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (code 2)."""
    # Text, not markup: a message may hold brackets ("[REDACTED]", "[a, b]").
    errors.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)
