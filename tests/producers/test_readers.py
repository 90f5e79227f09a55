"""Producer input: good files become items; bad ones name the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.readers import InputError, read_items
from tests.conftest import EXAMPLES


def test_jsonl_keeps_the_producer_id_and_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a1", "text": "hello", "expected": "x", "lang": "en"}\n\n'
        '{"id": 7, "text": "world"}\n'
    )
    items = read_items(path)
    assert [(i.external_id, i.line_no, i.expected) for i in items] == [
        ("a1", 1, "x"),
        ("7", 3, None),
    ]
    assert items[0].fields == {"lang": "en"}


def test_csv_rows_and_missing_ids_fall_back_to_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('text,priority\n"a, quoted ticket",high\nplain,low\n')
    items = read_items(path)
    assert [(i.external_id, i.text, i.fields["priority"]) for i in items] == [
        ("2", "a, quoted ticket", "high"),
        ("3", "plain", "low"),
    ]


def test_the_example_files_read() -> None:
    assert len(read_items(EXAMPLES / "tickets.jsonl")) == 600
    assert len(read_items(EXAMPLES / "tickets.csv")) == 120
    assert len(read_items(EXAMPLES / "documents.jsonl")) == 60


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.jsonl",
            '{"id": 1, "text": "ok"}\n{"id": 2, "text": \n',
            "bad.jsonl:2: not valid JSON",
        ),
        (
            "bad.jsonl",
            '{"id": 1, "text": "ok"}\n["a list"]\n',
            "bad.jsonl:2: expected a JSON object",
        ),
        ("bad.jsonl", '{"id": 1, "body": "no text"}\n', "bad.jsonl:1: missing the 'text' field"),
        ("bad.jsonl", '{"id": 1, "text": "  "}\n', "bad.jsonl:1: 'text' is empty"),
        ("bad.jsonl", '{"id": 1, "text": 5}\n', "bad.jsonl:1: 'text' must be a string"),
        (
            "bad.jsonl",
            '{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n',
            "bad.jsonl:2: id '1' repeats line 1",
        ),
        ("bad.jsonl", "", "bad.jsonl: no items found"),
        ("bad.csv", "id,body\n1,hello\n", "bad.csv:1: the header has no 'text' column"),
        ("bad.csv", "id,text\n1,hello\n2,\n", "bad.csv:3: 'text' is empty"),
        ("bad.csv", "id,text\n1,hello,extra\n", "bad.csv:2: more cells than the header"),
    ],
)
def test_bad_input_names_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as error:
        read_items(path)
    assert message in str(error.value)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match="latin1.jsonl:2: not valid UTF-8"):
        read_items(path)


def test_an_oversized_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text('{"id": 1, "text": "' + "x" * 1_100_000 + '"}\n')
    with pytest.raises(InputError, match="big.jsonl:1: 'text' is 1,100,000 bytes"):
        read_items(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.jsonl: no such file"):
        read_items(tmp_path / "nope.jsonl")
