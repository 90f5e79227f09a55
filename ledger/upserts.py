"""INSERT ... ON CONFLICT DO UPDATE, built once per table and dialect.

Hot writers (the attempts of a chunk, the response cache) run these with executemany. A Core
statement on the table, not the ORM entity: the ORM's bulk-insert path did per-row
bookkeeping that a P1 profile put at a fifth of the worker's ledger time (the attempts, session
4) and 8% of its CPU (the cache, session 7). Built once, so SQLAlchemy reuses its compiled form
(building `.values(rows)` per chunk compiled a new statement each time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

_BUILT: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def upsert(
    session: Session, entity: Any, keys: Sequence[str], refreshed: Sequence[str], rows: list
) -> None:
    """Insert `rows` (dicts by column name) into `entity`'s table; a row whose `keys` exist
    already gets the `refreshed` columns of the new row. SQLite or PostgreSQL."""
    if rows:
        session.execute(_statement(session, entity, keys, refreshed), rows)


def _statement(session: Session, entity: Any, keys: Sequence[str], refreshed: Sequence[str]) -> Any:
    table = cast(Table, entity.__table__)
    dialect_name = session.get_bind().dialect.name
    # Keyed by everything the statement is built from: a second caller of the same table with
    # other keys or columns gets its own statement, not the first caller's.
    built = (table.name, dialect_name, tuple(keys), tuple(refreshed))
    found = _BUILT.get(built)
    if found is None:
        from sqlalchemy.dialects import postgresql, sqlite

        if dialect_name not in ("postgresql", "sqlite"):  # pragma: no cover
            raise NotImplementedError(f"no upsert for {dialect_name}")
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        insert = dialect.insert(table)
        found = _BUILT[built] = insert.on_conflict_do_update(
            index_elements=list(keys), set_={name: insert.excluded[name] for name in refreshed}
        )
    return found
