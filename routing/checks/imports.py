"""Resolve what a routing file names as code (a custom check's `function:`, a JSON check's
`model:`), only from what this host allows.

The routing file is data: a copy is stored with each batch in the ledger and read back by every
worker. Resolving any dotted path it names let whoever could write the ledger run code on every
worker (`shutil:rmtree`, `os:system`). So a name resolves only when the host that loads the file
allows it, and the check is made on the text, before anything is imported:

- an entry point of the `batchrouter.checks` group (installed on the host: `function: <name>`);
- a `module:function` listed in BATCHROUTER_ALLOWED_CHECKS;
- anything in a module under a prefix listed there (`myapp.checks` allows
  `myapp.checks:mentions` and `myapp.checks.orders:Order`), if it is defined there too: a
  module's imports (`myapp.checks:system` after `from os import system`) are refused.

Names starting with `_` are refused everywhere (no walking to `__globals__` or `__builtins__`).
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from routing.settings import get_settings

ENTRY_POINT_GROUP = "batchrouter.checks"
SETTING = "BATCHROUTER_ALLOWED_CHECKS"
# Validation context key: False when the caller only reads the file's shape (reports, retry),
# so the named code is neither resolved nor imported there.
RESOLVE_CODE = "resolve code"


def resolving(context: Any) -> bool:
    """Whether validation with this context resolves (and imports) named code."""
    return bool((context or {}).get(RESOLVE_CODE, True))


def resolve_allowed(reference: str) -> Any:
    """The object `reference` names, if this host allows it; ValueError saying why not (in
    which case nothing was imported)."""
    reference = reference.strip()
    if ":" not in reference:
        entries = _entry_points()
        entry = entries.get(reference)
        if entry is None and "." not in reference:
            close = difflib.get_close_matches(reference, list(entries), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{reference!r} is neither an entry point of the {ENTRY_POINT_GROUP!r} group on "
                f"this host (it has: {', '.join(sorted(entries)) or 'none'}) nor a dotted path "
                f"like 'package.module:name'{hint}"
            )
        if entry is not None:
            try:
                return entry.load()
            except Exception as exc:  # the host's own package is broken: say so at load
                raise ValueError(
                    f"entry point {reference!r} ({entry.value}) failed to load "
                    f"({type(exc).__name__}: {exc})"
                ) from None
    module_name, attribute = split_dotted(reference)
    allowed = get_settings().allowed_check_entries()
    exact = f"{module_name}:{attribute}" in allowed
    by_prefix = _under_prefix(module_name, allowed)
    if not (exact or by_prefix):
        raise ValueError(_refusal(reference, allowed))
    target = _import(reference, module_name, attribute)
    defined_in = getattr(target, "__module__", None)
    outside = not (isinstance(defined_in, str) and _under_prefix(defined_in, allowed))
    if not exact and callable(target) and outside:  # data is refused by its caller's type check
        raise ValueError(
            f"{reference!r} is defined in module {defined_in!r}, not under an allowed prefix "
            f"({SETTING}); name it where it is defined, or allow it as module:function"
        )
    return target


def split_dotted(reference: str) -> tuple[str, str]:
    """`package.module:name` or `package.module.name` -> (module, name)."""
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
    else:
        module_name, _, attribute = reference.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"{reference!r} is not a dotted path like 'package.module:name'")
    if any(part.startswith("_") or not part.isidentifier() for part in attribute.split(".")):
        raise ValueError(f"{reference!r}: names starting with '_' cannot be used")
    return module_name, attribute


def _under_prefix(module_name: str, allowed: tuple[str, ...]) -> bool:
    prefixes = [entry for entry in allowed if ":" not in entry]
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


def _refusal(reference: str, allowed: tuple[str, ...]) -> str:
    names = sorted(_entry_points())
    return (
        f"{reference!r} is not allowed on this host: a routing file may name only the checks "
        f"the host allows ({SETTING}={','.join(allowed) or '(empty)'}; entry points in "
        f"{ENTRY_POINT_GROUP!r}: {', '.join(names) or 'none'}); nothing was imported"
    )


def _entry_points() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def _import(reference: str, module_name: str, attribute: str) -> Any:
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while importing
        raise ValueError(
            f"cannot import {reference!r}: module {module_name!r} failed to import "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"cannot import {reference!r}: module {module_name!r} has no attribute "
                f"{attribute!r}"
            ) from None
    return target
