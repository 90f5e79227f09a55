"""budgets: per batch and per project tag

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("budget_usd", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("reserved_usd", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("spent_usd", sa.Float(), server_default="0", nullable=False))

    op.create_table(
        "project_budgets",
        sa.Column("project", sa.String(length=100), nullable=False),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("reserved_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("spent_usd", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("project"),
    )


def downgrade() -> None:
    op.drop_table("project_budgets")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("spent_usd")
        batch_op.drop_column("reserved_usd")
        batch_op.drop_column("budget_usd")
