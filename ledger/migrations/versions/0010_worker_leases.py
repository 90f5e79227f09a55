"""Claims are leases: worker_leases (one row per worker process, renewed by its heartbeat),
items.lease_holder (the process whose lease holds a running item), and attempts.claim_no (the
claim a call was made under: ledger/superseded.py).

The reconciler re-queues a running item as soon as its holder's lease has lapsed (issue 18),
instead of waiting for the broker's visibility timeout; a live worker's claims are never taken.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
# The money migration (0009) comes first; until it is merged this branch chains on 0008.
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_leases",
        sa.Column("holder", sa.String(length=200), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_holder", sa.String(length=200), nullable=True))
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_no", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("claim_no")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("lease_holder")
    op.drop_table("worker_leases")
