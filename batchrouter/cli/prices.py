"""`batchrouter prices import | show`: the price table from LiteLLM's maintained price map."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from batchrouter.cli.common import console, fail

prices_app = typer.Typer(no_args_is_help=True, help="The price table (see docs/providers.md).")
_SHOWN = 12  # names listed per section before "and N more"


def _listing(names: list[str]) -> str:
    more = f", and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _print_report(report: Any, out: Path, written: bool) -> None:
    verb = "wrote" if written else "would write (dry run)"
    console.print(f"prices {report.version}: {verb} {report.models} models to {out}")
    console.print(f"  added {len(report.added)}: {_listing(report.added)}")
    console.print(f"  changed {len(report.changed)} figures:")
    for model, name, old, new in report.changed[:_SHOWN]:
        console.print(f"    {model} {name}: {old} -> {new}")
    if len(report.changed) > _SHOWN:
        console.print(f"    and {len(report.changed) - _SHOWN} more (--json lists all)")
    if report.kept:
        console.print(f"  kept {len(report.kept)} not in the source: {_listing(report.kept)}")
    if report.removed:
        console.print(f"  removed {len(report.removed)}: {_listing(report.removed)}")
    console.print(f"  rejected {len(report.rejected)} source entries:")
    for key, reason in report.rejected[:_SHOWN]:
        console.print(f"    {key}: {reason}")


@prices_app.command("import")
def prices_import(
    source: Annotated[Path, typer.Argument(help="LiteLLM's model_prices_and_context_window.json")],
    out: Annotated[
        Path | None,
        typer.Option(help="price file to write (default: $BATCHROUTER_PRICE_FILE)"),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="the table's version (default: today's date, UTC)")
    ] = None,
    source_name: Annotated[
        str | None, typer.Option(help="where the figures came from, kept in the file")
    ] = None,
    drop_missing: Annotated[
        bool, typer.Option("--drop-missing", help="remove models the source no longer lists")
    ] = False,
    save_source: Annotated[
        Path | None,
        typer.Option(help="also write the source trimmed to the chat models and fields read"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, write nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Map LiteLLM's price map (chat models of the providers batchrouter calls) to a price
    file: input, cached input, cache write, output, batch prices and context windows. Every
    entry passes the table's plausibility check; the report says what changed against the file
    being replaced (or the built-in table), what was kept and what was rejected."""
    from routing.price_import import build_price_file, dump_price_file, trim_litellm
    from routing.price_table import PRICE_FILE_ENV, PriceTableError

    target = out or (Path(os.environ[PRICE_FILE_ENV]) if os.environ.get(PRICE_FILE_ENV) else None)
    if target is None:
        raise fail(f"say where to write: --out FILE, or set {PRICE_FILE_ENV}")
    try:
        data = json.loads(source.read_text())
        previous = json.loads(target.read_text()) if target.exists() else _builtin()
        table, report = build_price_file(
            data,
            previous,
            version=version or dt.datetime.now(dt.UTC).date().isoformat(),
            source_name=source_name or f"LiteLLM {source.name} (MIT)",
            drop_missing=drop_missing,
        )
    except (OSError, json.JSONDecodeError, PriceTableError) as exc:
        raise fail(f"{source}: {exc}") from exc
    if not dry_run:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(dump_price_file(table))
        tmp.replace(target)  # a reader never sees half a price file
        if save_source is not None:
            trimmed = trim_litellm(data)
            rows = [f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in trimmed.items()]
            save_source.write_text("{\n" + ",\n".join(rows) + "\n}\n")  # a model per line
    if as_json:
        console.print_json(
            json.dumps({**asdict(report), "out": str(target), "written": not dry_run})
        )
    else:
        _print_report(report, target, not dry_run)


def _builtin() -> dict[str, Any]:
    import importlib.resources

    return dict(
        json.loads((importlib.resources.files("routing") / "data" / "prices.json").read_text())
    )


@prices_app.command("show")
def prices_show(
    model: Annotated[str, typer.Argument(help="model id, as a deployment's `model:` names it")],
    provider: Annotated[str | None, typer.Option(help="the deployment's provider")] = None,
) -> None:
    """The prices and context window a deployment of MODEL would use (USD per 1M tokens)."""
    from routing.price_table import PriceTableError, price_table

    try:
        table = price_table()
        prices = table.lookup(model, provider=provider)
        batch = table.lookup(model, provider=provider, batch=True)
    except (KeyError, PriceTableError) as exc:
        raise fail(str(exc).strip("\"'")) from exc
    window = table.context_window(model, provider)
    console.print(f"{model}: {prices.model_dump(exclude_none=True)}")
    console.print(f"  batch: input {batch.input}, output {batch.output} ({batch.version})")
    console.print(f"  context window: {window if window else 'not in the table'}")


def register(app: typer.Typer) -> None:
    app.add_typer(prices_app, name="prices")
