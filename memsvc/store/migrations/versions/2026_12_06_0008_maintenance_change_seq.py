"""Scheduled maintenance skips idle cubes: each run keeps the cube's newest change-log seq
at its start, so a tick can tell whether a record changed since (memsvc/maintenance.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("maintenance_runs") as batch:
        batch.add_column(sa.Column("change_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("maintenance_runs") as batch:
        batch.drop_column("change_seq")
