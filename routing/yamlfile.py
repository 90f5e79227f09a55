"""Load YAML and remember the line of every value, so config errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class DuplicateKeyError(ValueError):
    """A mapping names the same key twice: YAML keeps the last silently, we refuse."""

    def __init__(self, path: tuple[str | int, ...], line: int, first_line: int) -> None:
        self.path, self.line, self.first_line = path, line, first_line
        where = ".".join(str(part) for part in path)
        super().__init__(f"{where}: duplicate key (first given on line {first_line})")


def load_yaml_with_lines(text: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """Parse YAML text; return the data and a map from field path to 1-based line number.

    Raises DuplicateKeyError for a key given twice in one mapping."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[tuple[str | int, ...], int] = {}
    if node is None:
        return None, lines
    _walk(node, (), lines)
    return yaml.safe_load(text), lines


def _walk(node: yaml.Node, path: tuple[str | int, ...], lines: dict) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            child = (*path, key.value)
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    first = seen[(key.tag, key.value)]
                    raise DuplicateKeyError(child, key.start_mark.line + 1, first)
                seen[(key.tag, key.value)] = key.start_mark.line + 1
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
