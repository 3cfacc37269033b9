"""Lifecycle and organization: pinned records, fact keys for supersession, the cause of a
version (which record superseded or absorbed this one), topic nodes and maintenance runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("memory_records") as batch:
        batch.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("fact_key", sa.String(length=300), nullable=True))
        batch.create_index("ix_memory_records_cube_fact", ["cube_pk", "fact_key", "valid_from"])
    with op.batch_alter_table("record_versions") as batch:
        batch.add_column(sa.Column("cause_id", sa.String(length=36), nullable=True))
    op.create_table(
        "topics",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("parent_pk", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("built_n", sa.Integer(), nullable=False),
        sa.Column("centroid", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"], ["cubes.pk"], name="fk_topics_cube_pk_cubes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_topics"),
    )
    op.create_index("ix_topics_cube_pk", "topics", ["cube_pk"])
    op.create_table(
        "maintenance_runs",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cube_pk"],
            ["cubes.pk"],
            name="fk_maintenance_runs_cube_pk_cubes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_maintenance_runs"),
    )
    op.create_index("ix_maintenance_runs_cube_pk", "maintenance_runs", ["cube_pk"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_runs_cube_pk", table_name="maintenance_runs")
    op.drop_table("maintenance_runs")
    op.drop_index("ix_topics_cube_pk", table_name="topics")
    op.drop_table("topics")
    with op.batch_alter_table("record_versions") as batch:
        batch.drop_column("cause_id")
    with op.batch_alter_table("memory_records") as batch:
        batch.drop_index("ix_memory_records_cube_fact")
        batch.drop_column("fact_key")
        batch.drop_column("pinned")
