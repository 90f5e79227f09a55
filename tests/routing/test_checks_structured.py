"""JSON (schema, schema file, pydantic model), regex and Python code checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.checks import JsonCheck, PythonCheck, RegexCheck, judge

# Every routing file here may name the test fixtures as custom checks and models (the host
# allow-list, routing/checks/imports.py); tests/routing/test_allowlist.py runs without it.
pytestmark = pytest.mark.usefixtures("allow_checkfixtures")

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "priority": {"type": "integer", "minimum": 1}},
    "required": ["label", "priority"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("output", "passed", "reason"),
    [
        ('{"label": "billing", "priority": 2}', True, "valid JSON"),
        ('```json\n{"label": "billing", "priority": 2}\n```', True, "valid JSON"),
        ('{"label": "billing"}', False, "'priority' is a required property"),
        ('{"label": "billing", "priority": 0}', False, "at $.priority"),
        ('{"label": "billing", "priority": 2, "x": 1}', False, "Additional properties"),
        ('{"label": "billing", "priority": 2', False, "not valid JSON"),
        ("", False, "no JSON"),
    ],
)
def test_json_schema(output: str, passed: bool, reason: str) -> None:
    judgement = judge([JsonCheck.model_validate({"schema": SCHEMA})], output, "src")
    assert judgement.passed is passed
    assert reason in judgement.verdicts[0].reason
    if passed:
        assert json.loads(judgement.output) == {"label": "billing", "priority": 2}


def test_json_without_target_only_parses() -> None:
    check = JsonCheck()
    assert judge([check], "[1, 2]", "").passed
    assert not judge([check], "[1, 2", "").passed


def test_json_schema_file(tmp_path: Path) -> None:
    path = tmp_path / "ticket.schema.json"
    path.write_text(json.dumps(SCHEMA))
    check = JsonCheck(schema_file=str(path))
    assert judge([check], '{"label": "a", "priority": 1}', "").passed
    assert not judge([check], '{"label": "a"}', "").passed


def test_json_pydantic_model() -> None:
    check = JsonCheck(model="tests.routing.checkfixtures:Ticket")
    assert judge([check], '{"label": "a", "priority": 3}', "").passed
    failed = judge([check], '{"label": "a", "priority": 9}', "")
    assert not failed.passed
    assert "Ticket: at $.priority" in failed.verdicts[0].reason


def test_json_targets_are_exclusive_and_schemas_valid() -> None:
    with pytest.raises(ValueError, match="at most one"):
        JsonCheck.model_validate({"schema": SCHEMA, "model": "tests.routing.checkfixtures:Ticket"})
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        JsonCheck.model_validate({"schema": {"type": "no-such-type"}})


@pytest.mark.parametrize(
    ("spec", "output", "passed", "kept"),
    [
        ({"pattern": r"#### (\d+)", "keep": 1}, "so 6 * 7\n#### 42", True, "42"),
        ({"pattern": r"#### (\d+)"}, "the answer is 42", False, None),
        ({"pattern": r"[A-Z]{3}-\d+", "match": "full"}, " ABC-12 ", True, "ABC-12"),
        ({"pattern": r"[A-Z]{3}-\d+", "match": "full"}, "id ABC-12", False, None),
        ({"pattern": "yes|no", "match": "full", "flags": ["ignorecase"]}, "YES", True, "YES"),
        ({"pattern": r"\bunknown\b", "invert": True}, "billing", True, "billing"),
        ({"pattern": r"\bunknown\b", "invert": True}, "it is unknown", False, None),
    ],
)
def test_regex(spec: dict, output: str, passed: bool, kept: str | None) -> None:
    judgement = judge([RegexCheck.model_validate(spec)], output, "src")
    assert judgement.passed is passed
    if kept is not None:
        assert judgement.output == kept


def test_regex_errors_at_load() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        RegexCheck(pattern="(unclosed")
    with pytest.raises(ValueError, match="no group 2"):
        RegexCheck(pattern="(a)", keep=2)


CODE = """Here you go:

```python
import math

def area(radius, precision=2):
    return round(math.pi * radius ** 2, precision)
```
"""


@pytest.mark.parametrize(
    ("spec", "output", "passed", "reason"),
    [
        ({"function": "area"}, CODE, True, "defines area()"),
        ({"function": "area", "args": 1}, CODE, True, "defines area()"),
        ({"function": "area", "args": 2}, CODE, True, "defines area()"),
        ({"function": "area", "args": 3}, CODE, False, "cannot be called with 3"),
        ({"function": "volume"}, CODE, False, "no top-level function 'volume' (defined: area)"),
        ({"function": "f"}, "def f(:\n  pass", False, "syntax error on line 1"),
        ({}, "return 5", False, "syntax error"),  # compiles only inside a function
        ({}, "x = 1", True, "compiles"),
        ({"function": "f", "args": 1}, "def f(*args):\n    return args", True, "defines f()"),
        ({"function": "f", "args": 1}, "def f(a, *, key):\n    pass", False, "cannot be"),
        ({"function": "f"}, "class A:\n    def f(self): pass", False, "no top-level"),
        ({}, "", False, "no code"),
    ],
)
def test_python_code(spec: dict, output: str, passed: bool, reason: str) -> None:
    judgement = judge([PythonCheck.model_validate(spec)], output, "write it")
    assert judgement.passed is passed, judgement.reason
    assert reason in judgement.verdicts[0].reason


def test_python_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\ndef f():\n    pass\n"
    assert judge([PythonCheck(function="f")], code, "").passed
    assert not marker.exists()


def test_python_function_name_from_an_item_field() -> None:
    check = PythonCheck(function="{entry_point}")
    assert judge([check], "def solve(): pass", "", fields={"entry_point": "solve"}).passed
    missing = judge([check], "def solve(): pass", "")
    assert not missing.passed and "no field 'entry_point'" in missing.reason
