"""Records keep their sentence keys' vectors (retrieval.sentence_keys) beside their own
embedding, so an index rebuilt or caught up from the database finds a record by a sentence
as the one built at write time does. Nullable: older records simply have no keys.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("memory_records") as batch:
        batch.add_column(sa.Column("key_embeddings", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("memory_records") as batch:
        batch.drop_column("key_embeddings")
