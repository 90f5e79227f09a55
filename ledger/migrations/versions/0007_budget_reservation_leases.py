"""budget reservations with leases: a dead worker's hold is released when its lease ends

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=100), nullable=True),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_budget_reservations_batch", "budget_reservations", ["batch_id"])
    op.create_index("ix_budget_reservations_expires", "budget_reservations", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_budget_reservations_expires", table_name="budget_reservations")
    op.drop_index("ix_budget_reservations_batch", table_name="budget_reservations")
    op.drop_table("budget_reservations")
