"""batch lifecycle and claim tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:27:38.223256
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="running", nullable=False)
        )
        batch_op.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("callback_task", sa.String(length=200), nullable=True))

    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claims", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("retry_base", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index("ix_items_state_updated", ["state", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_state_updated")
        batch_op.drop_column("retry_base")
        batch_op.drop_column("claims")
        batch_op.drop_column("claimed_by")

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("callback_task")
        batch_op.drop_column("callback_url")
        batch_op.drop_column("paused_reason")
        batch_op.drop_column("state")
