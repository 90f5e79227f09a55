"""Load YAML and remember the line of every value, so config errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_yaml_with_lines(text: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Parse YAML text; return the data and a map from field path to 1-based line number."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[tuple[str | int, ...], int] = {}
    if node is None:
        return None, lines
    _walk(node, (), lines)
    return yaml.safe_load(text), lines


def _walk(node: yaml.Node, path: tuple[str | int, ...], lines: dict) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _walk(value, (*path, index), lines)


def nearest_line(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    """The line of `loc`, or of its closest ancestor that exists in the file."""
    for cut in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:cut]))
        if line is not None:
            return line
    return None


def read_text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")
