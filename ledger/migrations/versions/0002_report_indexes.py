"""report indexes: filters by date, project and task type; failure reasons per batch

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `report --since/--until` filters attempts by time across batches.
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index("ix_attempts_created_at", ["created_at"], unique=False)
        # Top failure reasons of one batch read only its non-passed attempts.
        batch_op.create_index("ix_attempts_batch_outcome", ["batch_id", "outcome"], unique=False)
    # `report --project/--type` pick batches first, then their attempts by ix_attempts_batch.
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index("ix_batches_project", ["project"], unique=False)
        batch_op.create_index("ix_batches_task_type", ["task_type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_task_type")
        batch_op.drop_index("ix_batches_project")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_batch_outcome")
        batch_op.drop_index("ix_attempts_created_at")
