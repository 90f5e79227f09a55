"""`batchrouter fit` and `batchrouter advise`: learn from the ledger (docs/learning.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchrouter.cli.common import console, errors, fail

if TYPE_CHECKING:
    from batchrouter.learning.fit import Fit
    from batchrouter.learning.sources import Source

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="routing file the history ran under (with --replay)")
]
ReplayOption = Annotated[
    Path | None, typer.Option("--replay", help="replay table of recorded answers (with --items)")
]
ItemsOption = Annotated[
    Path | None, typer.Option("--items", help="items with id, text and expected (with --replay)")
]
BatchOption = Annotated[
    list[str] | None,
    typer.Option("--batch", metavar="BATCH", help="ledger batch to learn from (repeatable)"),
]
AlphaOption = Annotated[
    float, typer.Option(help="at most this share of accepted answers wrong (below the top rung)")
]
DeltaOption = Annotated[float, typer.Option(help="... with probability at least 1 - delta")]
HoldoutOption = Annotated[float, typer.Option(help="share of items the fit never sees")]
SeedOption = Annotated[int, typer.Option(help="seed of the split")]
OutDirOption = Annotated[Path, typer.Option(help="folder for the fitted artefact")]
BackendOption = Annotated[
    str,
    typer.Option(
        "--router-backend",
        help="tfidf (TF-IDF + logistic regression) or lsa (an LSA embedding between them)",
    ),
]


def _source(
    task_type: str,
    config: Path | None,
    replay: Path | None,
    items: Path | None,
    batch: list[str] | None,
) -> Source:
    from batchrouter.learning.sources import from_batches, from_table
    from producers.readers import InputError
    from routing.config import ConfigError
    from routing.replay_table import ReplayTableError

    try:
        if batch:
            source = from_batches(batch)
            if source.task_type != task_type:
                raise fail(f"the batches are of task type {source.task_type!r}, not {task_type!r}")
        elif config and replay and items:
            source = from_table(config, task_type, replay, items)
        else:
            raise fail("give --batch ID (the ledger), or --config, --replay and --items")
    except (ConfigError, InputError, ReplayTableError, ValueError, KeyError) as exc:
        raise fail(str(exc)) from None
    if len(source.history) < 10:
        raise fail(f"only {len(source.history)} items with a known right answer: too few to learn")
    return source


def _fit(
    source: Source,
    alpha: float,
    delta: float,
    holdout: float,
    seed: int,
    out_dir: Path,
    backend: str = "tfidf",
) -> Fit:
    from batchrouter.learning import fit as fitting

    if not (0 < alpha < 1 and 0 < delta < 1 and 0 < holdout < 1):
        raise fail("--alpha, --delta and --holdout must be between 0 and 1")
    if backend not in fitting.ROUTER_BACKENDS:
        choices = ", ".join(fitting.ROUTER_BACKENDS)
        raise fail(f"--router-backend {backend!r}: choose from {choices}")
    from routing.config import parse_config

    ladder = fitting.ladder_of(
        parse_config(source.config_text, resolve_code=False), source.task_type
    )
    try:
        result = fitting.fit(
            source.task_type,
            ladder,
            source.history,
            alpha=alpha,
            delta=delta,
            holdout=holdout,
            seed=seed,
            router_backend=backend,
        )
    except RuntimeError as exc:  # scikit-learn missing: the `learning` extra
        raise fail(str(exc)) from None
    fitting.save(
        result,
        source.config_text,
        out_dir,
        {**source.note, "alpha": alpha, "delta": delta, "seed": seed, "holdout": holdout},
    )
    return result


def fit(
    task_type: Annotated[str, typer.Argument(help="task type to fit")],
    config: ConfigOption = None,
    replay: ReplayOption = None,
    items: ItemsOption = None,
    batch: BatchOption = None,
    alpha: AlphaOption = 0.02,
    delta: DeltaOption = 0.05,
    holdout: HoldoutOption = 0.3,
    seed: SeedOption = 0,
    out_dir: OutDirOption = Path("fitted"),
    router_backend: BackendOption = "tfidf",
    write: Annotated[Path | None, typer.Option(help="write the proposed routing file here")] = None,
) -> None:
    """Fit the pre-call router and calibrate each rung's acceptance to the error bound alpha."""
    source = _source(task_type, config, replay, items, batch)
    result = _fit(source, alpha, delta, holdout, seed, out_dir, router_backend)
    console.print(
        f"fitted {task_type} on {len(source.history)} items ({len(result.held_out)} held out)"
    )
    for tier, found in result.plan.calibrated.items():
        rule = found.rule.describe() if found.rule else "nothing can be proven: skip the rung"
        console.print(
            f"  rung {tier}: accept {rule}: {found.accepted} of {found.samples} calibration "
            f"answers, {found.wrong} wrong (bound {alpha:g} at {1 - delta:.0%})",
            markup=False,
        )
    if result.router is not None:
        skip = result.plan.skip_below
        start = (
            f"items scored below {skip:g} start on the second rung"
            if skip
            else "every item starts on the first rung"
        )
        console.print(
            f"  router: {_router_name(result.router)}, {len(result.router.vocabulary)} terms; {start}"
        )
    for name, figures in (("fixed rules", result.fixed), ("fitted rules", result.fitted)):
        console.print(
            f"  held out, {name}: accuracy {100 * figures.accuracy:.1f}% (of "
            f"{figures.items - figures.unknown} with a known answer), cost "
            f"${figures.cost_usd:.4f}, escalated {figures.escalated} of {figures.items}"
        )
    console.print(f"artefact {result.artefact} sha256 {result.sha256}", markup=False)
    if write is not None and result.routing_yaml:
        write.write_text(result.routing_yaml, encoding="utf-8")
        errors.print(f"wrote the proposed routing file to {write}")


def advise(
    task_type: Annotated[str, typer.Argument(help="task type to advise on")],
    config: ConfigOption = None,
    replay: ReplayOption = None,
    items: ItemsOption = None,
    batch: BatchOption = None,
    alpha: AlphaOption = 0.02,
    delta: DeltaOption = 0.05,
    holdout: HoldoutOption = 0.3,
    seed: SeedOption = 0,
    out_dir: OutDirOption = Path("fitted"),
    router_backend: BackendOption = "tfidf",
    write: Annotated[
        Path | None, typer.Option(help="write the first advice's routing file")
    ] = None,
) -> None:
    """Recommend changes to the rules, each replayed on items the fit did not see."""
    from batchrouter.evaluate import EvaluationError
    from batchrouter.learning.advise import advise as recommend

    source = _source(task_type, config, replay, items, batch)
    result = _fit(source, alpha, delta, holdout, seed, out_dir, router_backend)
    held_out = [h.item for h in result.held_out]
    try:
        found, _current = recommend(source.config_text, task_type, source.table, held_out, result)
    except EvaluationError as exc:
        raise fail(str(exc)) from None
    reference = _current.reference
    if reference is not None:
        row = _current.row(reference)
        console.print(
            f"now: cost ${_current.row('cascade').cost_usd:.4f}; {reference} alone: cost "
            f"${row.cost_usd:.4f}, accuracy {100 * (row.accuracy or 0):.1f}% "
            f"({row.items} unseen items"
            + (f"; {row.missing_outcomes} found no recorded answer" if row.missing_outcomes else "")
            + ")",
            markup=False,
        )
    if not found:
        console.print("no change to recommend")
    for number, advice in enumerate(found, 1):
        console.print(f"{number}. {advice.line()}", markup=False)
    if write is not None:
        chosen = next((a for a in found if a.routing_yaml), None)
        if chosen is None or chosen.routing_yaml is None:
            raise fail("no advice with a routing file to write")
        write.write_text(chosen.routing_yaml, encoding="utf-8")
        errors.print(f"wrote the routing file of advice 1 ({chosen.title}) to {write}")


def _router_name(router) -> str:  # type: ignore[no-untyped-def]
    if router.components:
        return f"TF-IDF + {len(router.components)}-dimension LSA embedding + logistic regression"
    return "TF-IDF + logistic regression"


def register(app: typer.Typer) -> None:
    app.command()(fit)
    app.command()(advise)
