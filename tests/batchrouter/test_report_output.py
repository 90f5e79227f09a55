"""`batchrouter report` and `batchrouter results` as a user runs them: table, JSON, CSV, HTML,
and result exports in JSONL, CSV and Parquet."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchrouter.cli import app
from tests.helpers.ledger_data import fill_ledger

runner = CliRunner()


@pytest.fixture
def ledger(use_ledger, sqlite_url: str) -> dict[str, str]:
    use_ledger(sqlite_url)
    return fill_ledger()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_table_output_shows_every_section(ledger: dict[str, str]) -> None:
    code, out = run("report", "--by", "task_type")
    assert code == 0, out
    for words in (
        "all batches",
        "By tier",
        "escalation funnel",
        "By model",
        "By task_type",
        "ticket_classification",
        "Latency per deployment",
        "Top failure reasons",
        "rate_limit",
        "premium tier (tier2) alone",
        "saving",
        "sim provider",
        "Accuracy against the expected answers: 1/2",
    ):
        assert words in out, words


def test_json_and_csv(ledger: dict[str, str]) -> None:
    code, out = run("report", "alpha", "--format", "json", "--by", "tier,model")
    assert code == 0
    data = json.loads(out)
    assert data["title"] == "batch alpha (ticket_classification)"
    assert data["group_by"] == ["tier", "model"] and len(data["groups"]) == 3
    assert [t["items_received"] for t in data["by_tier"]] == [4, 2, 1]
    assert data["attempts"] == 8 and data["saving_pct"] == pytest.approx(
        100 * (data["premium_only_cost_usd"] - data["cost_usd"]) / data["premium_only_cost_usd"]
    )

    code, out = run("report", "--format", "csv", "--by", "day", "--project", "beta")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["day"] for r in rows] == ["2026-11-02", "total"]
    assert rows[0]["attempts"] == "4" and float(rows[1]["cost_usd"]) == pytest.approx(0.035)
    assert rows[0]["premium_only_cost_usd"] == ""  # not defined per day
    assert rows[1]["cache_hits"] == "0" and float(rows[1]["routing_saving_usd"]) == pytest.approx(
        float(rows[1]["saving_usd"])
    )


def test_html_is_self_contained_with_charts(ledger: dict[str, str], tmp_path: Path) -> None:
    page_file = tmp_path / "report.html"
    code, _ = run("report", "--html", str(page_file), "--format", "json")
    assert code == 0
    page = page_file.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert re.search(r"https?://", page) is None, "no CDN, no remote fonts, works offline"
    assert "<script" not in page and "<link" not in page
    assert page.count("<svg") == 4  # cost by tier, cost by model, funnel, latency
    for words in ("Cost by tier", "Escalation funnel", "Latency per deployment", "sim-premium"):
        assert words in page
    assert "6 received: 2 resolved, 4 passed on" in page  # the tier0 funnel bar
    assert "Where the saving came from" in page and "0 cache hits" in page


def test_html_shows_the_providers_latency_and_the_time_queued_in_the_worker(
    ledger: dict[str, str], tmp_path: Path
) -> None:
    """Issue 19: the HTML page, like the terminal report, shows both, per deployment."""
    from sqlalchemy import update

    from ledger.db import session_scope
    from ledger.models import Attempt

    with session_scope() as session:
        session.execute(
            update(Attempt).where(Attempt.deployment == "sim-mini").values(queued_ms=450.0)
        )
    page_file = tmp_path / "report.html"
    assert run("report", "--html", str(page_file), "--format", "json")[0] == 0
    page = page_file.read_text()
    page = page[page.index("<h2>Latency per deployment") : page.index("<h2>Details by")]
    assert "<th class=''>queued in the worker, mean ms</th>" in page
    rows = {
        cells[0]: cells
        for cells in (
            re.findall(r"<td class='l?'>([^<]*)</td>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", page)
        )
        if cells
    }
    assert rows["sim-mini"][3] == "350" and rows["sim-mini"][-1] == "450"  # p50, queued
    assert rows["sim-nano"][-1] == "-"  # attempts without a recorded queue time


def test_bad_report_options_exit_2(ledger: dict[str, str]) -> None:
    assert run("report", "no-such-batch")[0] == 2
    assert run("report", "--by", "colour")[0] == 2
    assert run("report", "--since", "yesterday")[0] == 2
    assert run("report", "--format", "xml")[0] == 2


def test_results_exports(ledger: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    assert run("results", "alpha", "--out", str(out))[0] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["i1", "i2", "i3", "i4", "i5"]  # input order
    assert rows[2] == {
        "id": "i3",
        "state": "succeeded",
        "output": "shipping_delay",
        "tier": "tier2",
        "deployment": "sim-premium",
        "model": "sim-premium",
        "attempts": 4,
        "cost_usd": pytest.approx(0.01),
        "error": None,
    }

    failed = tmp_path / "failed.csv"
    assert run("results", "beta", "--out", str(failed), "--state", "failed")[0] == 0
    table = list(csv.DictReader(failed.open()))
    assert [(r["id"], r["state"], r["error"]) for r in table] == [
        ("j1", "failed", "length check failed")
    ]
    good = tmp_path / "good.txt"
    assert (
        run("results", "alpha", "-o", str(good), "--state", "succeeded", "--format", "csv")[0] == 0
    )
    assert good.read_text().splitlines()[0].startswith("id,state,output,tier")
    assert len(good.read_text().splitlines()) == 4

    assert run("results", "alpha", "-o", str(tmp_path / "x.xml"))[0] == 2
    assert run("results", "alpha", "-o", str(out), "--state", "running")[0] == 2


def test_results_parquet(ledger: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    try:
        import pyarrow.parquet as pq
    except ImportError:
        code, _ = run("results", "alpha", "--out", str(out))
        assert code == 2  # a clear "needs pyarrow" error, not a traceback
        pytest.skip("pyarrow is not installed")
    assert run("results", "alpha", "--out", str(out))[0] == 0
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ["i1", "i2", "i3", "i4", "i5"]


# Issue 13, section 3: outputs, ids, errors and names are data from producers and models; a
# spreadsheet runs a CSV cell starting with =, +, -, @, tab or CR as a formula.
HOSTILE = {
    "i1": ('=HYPERLINK("http://x")', "+1+1", "-2+3"),
    "i2": ("@SUM(A1)", "\tTAB", "\rCR"),
}


def _poison(ledger: dict[str, str]) -> None:
    from sqlalchemy import update

    from ledger.db import session_scope
    from ledger.models import Batch, Item

    with session_scope() as session:
        for external_id, (output, error, model) in HOSTILE.items():
            session.execute(
                update(Item)
                .where(Item.external_id == external_id)
                .values(output=output, error=error, model=model)
            )
        session.execute(update(Batch).values(project="=cmd|'/c calc'!A1"))


def test_results_csv_escapes_formula_cells(ledger: dict[str, str], tmp_path: Path) -> None:
    _poison(ledger)
    out = tmp_path / "results.csv"
    assert run("results", "alpha", "--out", str(out))[0] == 0
    rows = {r["id"]: r for r in csv.DictReader(out.open(newline=""))}
    for external_id, cells in HOSTILE.items():
        row = rows[external_id]
        assert (row["output"], row["error"], row["model"]) == tuple("'" + c for c in cells)
    assert rows["i3"]["output"] == "shipping_delay"  # ordinary cells are untouched
    assert float(rows["i3"]["cost_usd"]) == pytest.approx(0.01)
    # JSONL is not for spreadsheets: it keeps the values as they are.
    jsonl = tmp_path / "results.jsonl"
    assert run("results", "alpha", "--out", str(jsonl))[0] == 0
    assert json.loads(jsonl.read_text().splitlines()[0])["output"] == HOSTILE["i1"][0]


def test_report_csv_escapes_formula_cells(ledger: dict[str, str]) -> None:
    _poison(ledger)
    code, out = run("report", "--format", "csv", "--by", "project")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["project"] for r in rows] == ["'=cmd|'/c calc'!A1", "total"]
    assert float(rows[-1]["cost_usd"]) > 0  # numbers stay numbers


def test_a_wide_report_written_to_a_file_keeps_every_digit(
    ledger: dict[str, str], tmp_path: Path
) -> None:
    """Issue 19: `report --by batch > file` cut numbers to '…' (a fixed width off a terminal)."""
    import os
    import subprocess
    import sys

    from sqlalchemy import update

    from batchrouter.reports.terminal import usd
    from ledger.db import session_scope
    from ledger.models import Batch
    from tests.conftest import ROOT

    with session_scope() as session:
        for name, batch_id in ledger.items():
            long = f"nightly-ticket-classification-{name}-2026-11-30-run-0042-with-a-long-name"
            session.execute(update(Batch).where(Batch.id == batch_id).values(name=long))
    out = tmp_path / "report.txt"
    with out.open("w") as handle:
        subprocess.run(
            [sys.executable, "-m", "batchrouter", "report", "--by", "batch,tier,model"],
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "80"},
            stdout=handle,
            check=True,
        )
    text = out.read_text()
    assert "…" not in text and "..." not in text
    code, shown = run("report", "--by", "batch,tier,model", "--format", "json")
    assert code == 0
    for group in json.loads(shown)["groups"]:
        assert group["key"]["batch"] in text
        for figure in (usd(group["cost_usd"]), f"{group['input_tokens']:,}"):
            assert figure in text, figure
