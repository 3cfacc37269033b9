"""Initial schema: tenants, cubes, memory records with history, entities, graph edges, change log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 02:18:21.875819
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSON documents: JSONB on PostgreSQL, JSON text elsewhere.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("record_pk", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index("ix_changes_cube_seq", ["cube_pk", "seq"], unique=False)

    op.create_table(
        "tenants",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "cubes",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner_user_id", sa.String(length=256), nullable=True),
        sa.Column("embedding_model", sa.String(length=512), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_pk"],
            ["tenants.pk"],
            name=op.f("fk_cubes_tenant_pk_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_cubes")),
        sa.UniqueConstraint("id", name=op.f("uq_cubes_id")),
        sa.UniqueConstraint("tenant_pk", "name", name="uq_cubes_tenant_name"),
    )
    with op.batch_alter_table("cubes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cubes_tenant_pk"), ["tenant_pk"], unique=False)

    op.create_table(
        "entities",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("normalized", sa.String(length=512), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"], ["cubes.pk"], name=op.f("fk_entities_cube_pk_cubes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_entities")),
        sa.UniqueConstraint("cube_pk", "normalized", "type", name="uq_entities_cube_name_type"),
    )
    op.create_table(
        "graph_edges",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("src_kind", sa.String(length=16), nullable=False),
        sa.Column("src_pk", sa.Integer(), nullable=False),
        sa.Column("dst_kind", sa.String(length=16), nullable=False),
        sa.Column("dst_pk", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"], ["cubes.pk"], name=op.f("fk_graph_edges_cube_pk_cubes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_graph_edges")),
    )
    with op.batch_alter_table("graph_edges", schema=None) as batch_op:
        batch_op.create_index("ix_graph_edges_dst", ["cube_pk", "dst_kind", "dst_pk"], unique=False)
        batch_op.create_index("ix_graph_edges_src", ["cube_pk", "src_kind", "src_pk"], unique=False)

    op.create_table(
        "memory_records",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cube_pk", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", JSON, nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=True),
        sa.Column("agent_id", sa.String(length=256), nullable=True),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.Column("recall_count", sa.Integer(), nullable=False),
        sa.Column("last_recalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("entities", JSON, nullable=False),
        sa.Column("embedding_precision", sa.String(length=16), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_pk"],
            ["cubes.pk"],
            name=op.f("fk_memory_records_cube_pk_cubes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_memory_records")),
        sa.UniqueConstraint("id", name=op.f("uq_memory_records_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("memory_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_memory_records_cube_session", ["cube_pk", "session_id"], unique=False
        )
        batch_op.create_index("ix_memory_records_cube_status", ["cube_pk", "status"], unique=False)
        batch_op.create_index("ix_memory_records_cube_user", ["cube_pk", "user_id"], unique=False)

    op.create_table(
        "record_versions",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("record_pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_pk"],
            ["memory_records.pk"],
            name=op.f("fk_record_versions_record_pk_memory_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_record_versions")),
        sa.UniqueConstraint("record_pk", "version", name="uq_record_versions_version"),
    )
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_versions_record_pk"), ["record_pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("record_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_versions_record_pk"))

    op.drop_table("record_versions")
    with op.batch_alter_table("memory_records", schema=None) as batch_op:
        batch_op.drop_index("ix_memory_records_cube_user")
        batch_op.drop_index("ix_memory_records_cube_status")
        batch_op.drop_index("ix_memory_records_cube_session")

    op.drop_table("memory_records")
    with op.batch_alter_table("graph_edges", schema=None) as batch_op:
        batch_op.drop_index("ix_graph_edges_src")
        batch_op.drop_index("ix_graph_edges_dst")

    op.drop_table("graph_edges")
    op.drop_table("entities")
    with op.batch_alter_table("cubes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cubes_tenant_pk"))

    op.drop_table("cubes")
    op.drop_table("tenants")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index("ix_changes_cube_seq")

    op.drop_table("changes")
