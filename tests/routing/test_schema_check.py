"""A ledger that is missing or behind the code fails with an instruction, not a SQL error."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BATCHROUTER_DATABASE_URL": f"sqlite:///{db}"}
    return subprocess.run(
        [sys.executable, "-m", "batchrouter", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_an_empty_or_old_ledger_asks_for_db_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    result = run("status", "some-batch", db=db)
    assert result.returncode == 2
    assert (
        "has no batchrouter tables" in result.stderr and "batchrouter db upgrade" in result.stderr
    )

    assert run("db", "upgrade", db=db).returncode == 0
    with sqlite3.connect(db) as connection:  # pretend the ledger was made by an older version
        connection.execute("update alembic_version set version_num = '0001'")
    result = run("report", "some-batch", db=db)
    assert result.returncode == 2 and "is at revision 0001" in result.stderr
