"""Records keep the time their own words name ("yesterday", said on 8 May), resolved at write
time (retrieval.analyze.stored_anchor): a cold cube's side index had resolved it again for
every record, about half of its build. Nullable: older records are resolved at load, as
before, and so is any value whose grammar version or checksum does not match.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("memory_records") as batch:
        batch.add_column(sa.Column("time_anchor", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("memory_records") as batch:
        batch.drop_column("time_anchor")
