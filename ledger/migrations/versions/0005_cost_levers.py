"""cost levers: response cache, in-batch duplicates, deferred tiers over provider batch APIs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 11:40:00.000000
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_of", Id, nullable=True))
        batch_op.add_column(sa.Column("duplicates", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("provider_batch_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_items_duplicate_of", ["duplicate_of"], unique=False)
        batch_op.create_index("ix_items_provider_batch", ["provider_batch_id"], unique=False)

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cache_hit", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("provider_batch_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("saved_usd", sa.Float(), server_default="0", nullable=False))

    op.create_table(
        "provider_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("request_count", sa.Integer(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("input_file_id", sa.String(length=200), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("provider_status", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_provider_batches_state", "provider_batches", ["state"], unique=False)

    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=100), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("token_logprobs", sa.JSON(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("source_attempt", sa.String(length=80), nullable=True),
        sa.Column("hits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_response_cache_expires", "response_cache", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_response_cache_expires", table_name="response_cache")
    op.drop_table("response_cache")
    op.drop_index("ix_provider_batches_state", table_name="provider_batches")
    op.drop_table("provider_batches")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("saved_usd")
        batch_op.drop_column("provider_batch_id")
        batch_op.drop_column("cache_hit")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_provider_batch")
        batch_op.drop_index("ix_items_duplicate_of")
        batch_op.drop_column("provider_batch_id")
        batch_op.drop_column("duplicates")
        batch_op.drop_column("duplicate_of")
