"""Idempotent adds: the keys of adds (per tenant, written with the add, kept for a TTL) and
the per-cube setting that refuses exact duplicates of an active record.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("cubes") as batch:
        batch.add_column(
            sa.Column("refuse_duplicates", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("record_pks", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_pk"],
            ["tenants.pk"],
            name="fk_idempotency_keys_tenant_pk_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cube_pk"],
            ["cubes.pk"],
            name="fk_idempotency_keys_cube_pk_cubes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_pk", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_index("ix_idempotency_keys_cube_pk", "idempotency_keys", ["cube_pk"])


def downgrade() -> None:
    with op.batch_alter_table("cubes") as batch:
        batch.drop_column("refuse_duplicates")
    op.drop_index("ix_idempotency_keys_cube_pk", table_name="idempotency_keys")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
