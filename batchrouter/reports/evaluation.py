"""An evaluation as a terminal table, Markdown or JSON (`batchrouter evaluate --format`)."""

from __future__ import annotations

import json
import math
from typing import Any

from batchrouter.evaluate import Evaluation

HEADERS = [
    "strategy",
    "models",
    "accuracy",
    "% of ref. accuracy",
    "total cost",
    "cost / item",
    "% of ref. cost",
    "escalated per tier",
]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.2f}"
    if abs(value) >= 0.01:
        return f"${value:,.4f}"
    digits = 2 - math.floor(math.log10(abs(value)))  # three significant figures, no exponent
    return f"${value:.{digits}f}"


def table_rows(evaluation: Evaluation) -> list[list[str]]:
    lines = []
    for row in evaluation.rows:
        name = row.name + (" (ref.)" if row.name == evaluation.reference else "")
        escalation = (
            " / ".join(f"{t.tier} {100 * t.rate:.1f}%" for t in row.tiers[:-1])
            if len(row.tiers) > 1
            else "-"
        )
        lines.append(
            [
                name,
                " > ".join(row.models),
                _pct(None if row.accuracy is None else 100 * row.accuracy),
                _pct(row.accuracy_pct_of_reference),
                _usd(row.cost_usd),
                _usd(row.cost_per_item),
                _pct(row.cost_pct_of_reference),
                escalation,
            ]
        )
    return lines


def notes(evaluation: Evaluation) -> list[str]:
    notes = []
    for row in evaluation.rows:
        if row.missing_outcomes:
            notes.append(
                f"{row.name}: {row.missing_outcomes} items met a call with no recorded outcome "
                "(they count as failed)"
            )
    return notes


def render_markdown(evaluation: Evaluation) -> str:
    reference = (
        f"; reference (most expensive single model): `{evaluation.reference}`"
        if evaluation.reference
        else ""
    )
    out = [
        f"Task type `{evaluation.task_type}`, {evaluation.items} items{reference}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join(["---"] + ["---"] + ["---:"] * 5 + ["---"]) + " |",
    ]
    out += ["| " + " | ".join(line) + " |" for line in table_rows(evaluation)]
    out += [""] + [f"- {note}" for note in notes(evaluation)]
    return "\n".join(out).rstrip() + "\n"


def render_json(evaluation: Evaluation) -> str:
    return json.dumps(evaluation.as_dict(), indent=2)


def render_table(evaluation: Evaluation) -> Any:
    """A rich Table (the CLI prints it, with any notes after it)."""
    from rich.table import Table

    table = Table(
        title=f"{evaluation.task_type}: {evaluation.items} items, cascade vs single models",
        caption=f"ref. = most expensive single model ({evaluation.reference}); "
        f"evaluated in {evaluation.elapsed_s:.1f} s",
    )
    for index, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if index in (0, 1, 7) else "right")
    for line in table_rows(evaluation):
        table.add_row(*line, style="bold" if line[0] == "cascade" else None)
    return table
