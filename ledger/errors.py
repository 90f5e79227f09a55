"""Errors, and the schema's head revision, that a caller may use without loading SQLAlchemy
or Alembic (the CLI's `main` catches them around every command; `status` checks the schema
with one query)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"


class LedgerSchemaError(RuntimeError):
    """The ledger's tables are missing or older than this version of batchrouter."""


class UnknownBatch(KeyError):
    pass


class AmbiguousBatch(UnknownBatch):
    """A reference (an id prefix, a name) that matches several batches; the message lists
    them. A subclass of UnknownBatch: every command that says "no batch" says this instead."""


class DuplicateBatchName(ValueError):
    """`submit --name` with a name another batch already has: a later `results NAME` would
    pick one of them silently (issue 16)."""


SHOWN_CANDIDATES = 10  # batches listed by an ambiguous reference


def ambiguous(batch_ref: str, kind: str, candidates: list[tuple]) -> AmbiguousBatch:
    """The error for `batch_ref` matching several batches: `kind` says how ("id prefix",
    "name"); `candidates` are (id, name, created_at, total) rows, newest first, one more than
    shown when there are more."""
    shown = [
        f"{batch_id} ({f'{name}, ' if name else ''}{total} items, created {str(created)[:16]})"
        for batch_id, name, created, total in candidates[:SHOWN_CANDIDATES]
    ]
    more = ", and more" if len(candidates) > SHOWN_CANDIDATES else ""
    return AmbiguousBatch(
        f"{batch_ref!r} is ambiguous: it is the {kind} of several batches: "
        + "; ".join(shown)
        + f"{more}. Give the full id (or more of it)"
    )


def hide_password(url: str) -> str:
    """`url` with its password, if any, shown as *** (error messages never print secrets)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{credentials}{at}{host}"


def schema_error(where: str, current: str | None, head: str) -> LedgerSchemaError:
    state = "has no batchrouter tables" if current is None else f"is at revision {current}"
    return LedgerSchemaError(
        f"the ledger at {where} {state}; this version needs {head}: "
        "run `batchrouter db upgrade` (submit does it too)"
    )


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


@lru_cache(maxsize=1)
def migration_head() -> str:
    """The newest migration's revision: the one no other migration names as its parent.

    Read from the files' `revision = "..."` and `down_revision = ...` lines, without loading
    Alembic (about a third of a CLI command's start-up); anything this does not understand
    (several heads, a merge, no match) is left to Alembic, which is the truth."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found, down = _REVISION.search(source), _DOWN.search(source)
        if found is None or down is None:
            return alembic_head()
        revisions.add(found.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else alembic_head()


def alembic_head() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())
