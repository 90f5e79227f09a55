"""Errors a caller may catch without loading SQLAlchemy (the CLI's `main` catches them around
every command, `--help` included)."""


class LedgerSchemaError(RuntimeError):
    """The ledger's tables are missing or older than this version of batchrouter."""
