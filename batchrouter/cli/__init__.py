"""The command line: one module per command group, each with a `register(app)`.

Exit codes: 0 success; 1 the batch finished with failed items; 2 bad input, bad routing file,
unknown or ambiguous batch, or wrong usage; 3 the ledger database or Redis cannot be reached;
130 interrupted (Ctrl-C).

`main` answers `batchrouter status BATCH [--format json]` on a PostgreSQL ledger before typer,
pydantic and SQLAlchemy are loaded (batchrouter/cli/quick.py; issue 19: status in a blink).
Everything else goes through the typer app (batchrouter/cli/application.py), loaded on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer import Typer

    app: Typer


def __getattr__(name: str) -> Any:
    """`from batchrouter.cli import app` loads typer and every command group on first use."""
    if name == "app":
        from batchrouter.cli.application import app

        return app
    raise AttributeError(f"module 'batchrouter.cli' has no attribute {name!r}")


def main() -> None:
    try:
        if sys.argv[1:2] == ["status"]:
            from batchrouter.cli.quick import quick_status

            code = quick_status(sys.argv[2:])
            if code is not None:
                sys.exit(code)
        from batchrouter.cli.application import app

        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # one line, not a traceback, for what an operator must fix
        from batchrouter.cli.common import EXIT_BAD_INPUT, EXIT_UNREACHABLE, fail_line
        from batchrouter.cli.unreachable import describe
        from ledger.errors import LedgerSchemaError

        if isinstance(exc, LedgerSchemaError):
            fail_line(str(exc))
            sys.exit(EXIT_BAD_INPUT)
        unreachable = describe(exc)
        if unreachable is None:
            raise
        fail_line(unreachable)
        sys.exit(EXIT_UNREACHABLE)
