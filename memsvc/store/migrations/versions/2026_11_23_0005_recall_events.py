"""Recall events: which records a recall returned and when, so the scheduler can promote the
records recalled often within a window to the activation (KV-cache) tier.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recall_events",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("record_pk", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"], ["cubes.pk"], name="fk_recall_events_cube_pk_cubes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_recall_events"),
    )
    op.create_index("ix_recall_events_cube_at", "recall_events", ["cube_pk", "at"])


def downgrade() -> None:
    op.drop_index("ix_recall_events_cube_at", table_name="recall_events")
    op.drop_table("recall_events")
