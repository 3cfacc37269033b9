"""Per-cube vector search mode (null: the service default, MEMSVC_SEARCH_MODE).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cubes") as batch:
        batch.add_column(sa.Column("search_mode", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cubes") as batch:
        batch.drop_column("search_mode")
