"""A process's first maintenance tick finds the cubes holding KV caches or adapters with a
partial index (only non-plaintext records are in it, so it stays a few rows), instead of
scanning every record: 145 ms at 200,000 records, seconds at millions.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIERED = sa.text("tier != 'plaintext'")


def upgrade() -> None:
    op.create_index(
        "ix_memory_records_tiered",
        "memory_records",
        ["cube_pk"],
        sqlite_where=TIERED,
        postgresql_where=TIERED,
    )


def downgrade() -> None:
    op.drop_index("ix_memory_records_tiered", table_name="memory_records")
