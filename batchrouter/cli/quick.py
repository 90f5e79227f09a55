"""`batchrouter status BATCH [--format table|json]` before typer is loaded.

`status` is polled by scripts and people, and each poll is a new process: issue 19 asked for
an answer in under half a second, whole process, at 100k items. Typer (with the pydantic its
parameter coercion loads), pydantic-settings and SQLAlchemy cost more than the query. So for
a PostgreSQL ledger named by BATCHROUTER_DATABASE_URL, `main` hands the plain forms of the
command here: the URL is read from the environment as routing.settings reads it, the query
runs through psycopg alone (ledger/status.py), and the table is drawn with rich as the typer
command draws it (`show_status`, shared). Any other form (`--failed`, `--help`, a SQLite
ledger, an option this parser does not know) returns None and goes through typer.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from ledger.status import BatchStatus

FORMATS = ("table", "json")


def parse(args: list[str]) -> tuple[str, str] | None:
    """(batch, format) for the forms handled here, else None."""
    batch: str | None = None
    fmt = "table"
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--format" and rest:
            fmt = rest.pop(0)
        elif arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg.startswith("-") or batch is not None:
            return None
        else:
            batch = arg
    if batch is None or fmt not in FORMATS:
        return None
    return batch, fmt


def database_url() -> str | None:
    """BATCHROUTER_DATABASE_URL as pydantic-settings reads it (the name in any case; an
    empty value means the default SQLite ledger)."""
    for key, value in os.environ.items():
        if key.upper() == "BATCHROUTER_DATABASE_URL":
            return value or None
    return None


def quick_status(args: list[str]) -> int | None:
    """Answer `status` and return the exit code, or None to leave it to typer."""
    parsed, url = parse(args), database_url()
    if parsed is None or url is None:
        return None
    batch, fmt = parsed
    from ledger.errors import LedgerSchemaError, UnknownBatch
    from ledger.status import read_status

    # batchrouter.cli.common (rich) is loaded for a table or an error, not for JSON.
    try:
        current = read_status(url, batch)
    except (UnknownBatch, LedgerSchemaError) as exc:
        from batchrouter.cli.common import EXIT_BAD_INPUT, fail_line

        fail_line(str(exc.args[0]))
        return EXIT_BAD_INPUT
    except Exception as exc:
        from batchrouter.cli.common import EXIT_UNREACHABLE, fail_line
        from batchrouter.cli.unreachable import describe

        unreachable = describe(exc, database_url=url)
        if unreachable is None:
            raise
        fail_line(unreachable)
        return EXIT_UNREACHABLE
    if current is None:  # a URL with options: the SQLAlchemy path reads it
        return None
    show_status(current, fmt)
    sys.stdout.flush()
    return 0


def show_status(current: BatchStatus, fmt: str, console: Console | None = None) -> None:
    """What `status` prints: the JSON document, or the table, the state and the budget."""
    if fmt == "json":
        from ledger.money import dumps

        print(dumps(current.as_dict()))  # money as exact decimal numbers
        return
    from batchrouter.cli import common
    from batchrouter.reports.terminal import status_table, usd

    console = console or common.console

    console.print(status_table(current))
    if current.state != "running":
        reason = f": {current.paused_reason}" if current.paused_reason else ""
        console.print(f"batch is {current.state}{reason}")
    limit = "unlimited" if current.budget_usd is None else usd(current.budget_usd)
    console.print(
        f"budget {limit}, spent {usd(current.spent_usd)}, "
        f"reserved {usd(current.reserved_usd if current.reserved_usd > 0 else 0)}"
    )
