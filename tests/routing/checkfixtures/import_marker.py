"""A custom check that leaves a mark when its module is imported: the tests of the host
allow-list prove with it that a refused name is never imported (not merely never called)."""

from __future__ import annotations

import os
from pathlib import Path

MARKER_ENV = "BATCHROUTER_TEST_IMPORT_MARKER"

if os.environ.get(MARKER_ENV):
    with Path(os.environ[MARKER_ENV]).open("a", encoding="utf-8") as marker:
        marker.write(f"imported by pid {os.getpid()}\n")


def check(output: str, source: str) -> bool:
    return True
