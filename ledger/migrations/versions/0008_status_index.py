"""status from an index: items(batch_id, state, tier) replaces items(batch_id, state);
attempts.queued_ms: a call's time in the worker, apart from the provider's latency

`batchrouter status` counts a batch's items by state and tier. With the tier in the index,
PostgreSQL answers that GROUP BY with an index-only scan instead of reading every row of the
batch (issue 19: 0.27 s at 100k items before). Queries by (batch_id, state) use its prefix.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_items_batch_state_tier", ["batch_id", "state", "tier"], unique=False
        )
        batch_op.drop_index("ix_items_batch_state")
    # Issue 19: the ledger's latency was 2.5-3x the provider's, because it counted the call's
    # wait inside a busy worker. latency_ms is now the provider's; this is the rest (NULL for
    # calls recorded before).
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("queued_ms")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_batch_state", ["batch_id", "state"], unique=False)
        batch_op.drop_index("ix_items_batch_state_tier")
