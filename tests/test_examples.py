"""The generated example inputs parse, have the documented shape, and regenerate identically."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GENERATED = ["tickets.jsonl", "tickets.csv", "documents.jsonl", "labels.txt"]
LABELS = [
    "billing", "refund_request", "shipping_delay", "account_access", "password_reset",
    "cancel_subscription", "technical_bug", "feature_request", "change_address", "complaint",
]  # fmt: skip


def read_jsonl(name: str) -> list[dict[str, str]]:
    lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_labels_file() -> None:
    assert (EXAMPLES / "labels.txt").read_text(encoding="utf-8").splitlines() == LABELS


def test_tickets_jsonl() -> None:
    tickets = read_jsonl("tickets.jsonl")
    assert len(tickets) == 600
    assert all(set(t) == {"id", "text", "expected"} for t in tickets)
    ids = [t["id"] for t in tickets]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"T-\d{5}", i) for i in ids)
    assert all(t["text"].strip() for t in tickets)
    counts = Counter(t["expected"] for t in tickets)
    assert set(counts) == set(LABELS)
    assert min(counts.values()) >= 40  # roughly balanced: 60 each on average


def test_tickets_csv_is_first_120_tickets() -> None:
    with (EXAMPLES / "tickets.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["id", "text", "expected"]
        rows = list(reader)
    assert len(rows) == 120
    assert rows == read_jsonl("tickets.jsonl")[:120]


def test_documents_jsonl() -> None:
    documents = read_jsonl("documents.jsonl")
    assert len(documents) == 60
    assert all(set(d) == {"id", "text"} for d in documents)
    ids = [d["id"] for d in documents]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"D-\d{3}", i) for i in ids)
    for document in documents:
        assert 150 <= len(document["text"].split()) <= 400, document["id"]
        assert "\n\n" in document["text"], document["id"]  # several paragraphs


@pytest.mark.timeout(120)
def test_generator_is_deterministic(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLES / "generate_examples.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
