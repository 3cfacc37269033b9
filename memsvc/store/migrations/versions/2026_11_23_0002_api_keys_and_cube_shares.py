"""API keys (hashed) for tenants, and read-only cube shares between tenants.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 02:42:03.801744
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_pk", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_pk"],
            ["tenants.pk"],
            name=op.f("fk_api_keys_tenant_pk_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_pk"), ["tenant_pk"], unique=False)

    op.create_table(
        "cube_shares",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("tenant_pk", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"], ["cubes.pk"], name=op.f("fk_cube_shares_cube_pk_cubes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_pk"],
            ["tenants.pk"],
            name=op.f("fk_cube_shares_tenant_pk_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_cube_shares")),
        sa.UniqueConstraint("cube_pk", "tenant_pk", name="uq_cube_shares_cube_tenant"),
    )
    with op.batch_alter_table("cube_shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cube_shares_tenant_pk"), ["tenant_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cube_shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cube_shares_tenant_pk"))

    op.drop_table("cube_shares")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_pk"))

    op.drop_table("api_keys")
