"""Money as exact decimals: every USD column NUMERIC(20, 12) instead of a float;
response_cache.usage: the token usage of the call that earned a cached answer

Floats drift when a million call costs are added up, and a cache hit re-estimated the tokens
of the call it reused (x1.2-1.35 for Claude) because the cache kept no usage (issue 16). Values
are kept: PostgreSQL rounds each float to 12 places as it converts; SQLite keeps its REAL
storage (it has no decimal type), read back as Decimal and summed exactly by ledger/money.py.
Entries cached before this revision have no usage: a hit on one estimates, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (table, column, nullable): every USD column of the ledger
MONEY_COLUMNS = (
    ("batches", "budget_usd", True),
    ("batches", "reserved_usd", False),
    ("batches", "spent_usd", False),
    ("project_budgets", "budget_usd", True),
    ("project_budgets", "reserved_usd", False),
    ("project_budgets", "spent_usd", False),
    ("budget_reservations", "amount_usd", False),
    ("items", "cost_usd", False),
    ("attempts", "cost_usd", False),
    ("attempts", "saved_usd", False),
    ("response_cache", "cost_usd", False),
)
NUMERIC = sa.Numeric(20, 12)


def _tables() -> list[str]:
    return list(dict.fromkeys(table for table, _, _ in MONEY_COLUMNS))


def upgrade() -> None:
    for table in _tables():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column, nullable in (c for c in MONEY_COLUMNS if c[0] == table):
                batch_op.alter_column(
                    column,
                    existing_type=sa.Float(),
                    type_=NUMERIC,
                    existing_nullable=nullable,
                    postgresql_using=f"round({column}::numeric, 12)",
                )
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.drop_column("usage")
    for table in _tables():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column, nullable in (c for c in MONEY_COLUMNS if c[0] == table):
                batch_op.alter_column(
                    column,
                    existing_type=NUMERIC,
                    type_=sa.Float(),
                    existing_nullable=nullable,
                    postgresql_using=f"{column}::double precision",
                )
