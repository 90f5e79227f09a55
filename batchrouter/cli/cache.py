"""`batchrouter cache stats | purge`: the response cache kept in the ledger (ledger/cache.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from batchrouter.cli.common import console, errors

cache_app = typer.Typer(no_args_is_help=True, help="The response cache (see docs/cache.md).")


@cache_app.command("stats")
def cache_stats(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Entries (live and expired), hits served and what they saved, entries per namespace."""
    from batchrouter.reports.terminal import usd
    from ledger.cache import stats
    from ledger.db import session_scope, upgrade_schema

    upgrade_schema()
    with session_scope(readonly=True) as session:
        figures = stats(session)
    if as_json:
        from ledger.money import dumps

        print(dumps(asdict(figures)))  # money as an exact decimal number
        return
    console.print(
        f"response cache: {figures.entries} entries ({figures.live} live, "
        f"{figures.expired} expired); {figures.hits} hits saved {usd(figures.saved_usd)}"
    )
    for namespace, count in figures.by_namespace.items():
        console.print(f"  namespace {namespace}: {count} entries")


@cache_app.command("purge")
def cache_purge() -> None:
    """Delete expired entries now (the reconcile beat task also does it every run)."""
    from ledger.cache import purge_expired
    from ledger.db import session_scope, upgrade_schema

    upgrade_schema()
    with session_scope() as session:
        removed = purge_expired(session)
    errors.print(f"purged {removed} expired cache entries")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
