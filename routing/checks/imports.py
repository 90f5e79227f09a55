"""Resolve `package.module:name` (or `package.module.name`) at config load, with clear errors."""

from __future__ import annotations

import importlib
from typing import Any


def import_dotted(path: str) -> Any:
    """The object a dotted path names; ValueError saying what could not be imported."""
    path = path.strip()
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"{path!r} is not a dotted path like 'package.module:name'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while importing
        raise ValueError(
            f"cannot import {path!r}: module {module_name!r} failed to import "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"cannot import {path!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return target
