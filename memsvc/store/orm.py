"""SQLAlchemy 2.0 models: the database is the source of truth for every index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

__all__ = [
    "TIERED",
    "ApiKeyRow",
    "Base",
    "ChangeRow",
    "CubeRow",
    "CubeShareRow",
    "EdgeRow",
    "EntityRow",
    "IdempotencyKeyRow",
    "LeaseRow",
    "MaintenanceRunRow",
    "RateBucketRow",
    "RecallEventRow",
    "RecordRow",
    "TenantRow",
    "TopicRow",
    "VersionRow",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
TIERED = "tier != 'plaintext'"  # a KV cache or an adapter: the partial index's condition


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; returns aware datetimes even on SQLite, which forgets the zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TenantRow(Base):
    __tablename__ = "tenants"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CubeRow(Base):
    __tablename__ = "cubes"
    __table_args__ = (UniqueConstraint("tenant_pk", "name", name="uq_cubes_tenant_name"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    owner_user_id: Mapped[str | None] = mapped_column(String(256))
    embedding_model: Mapped[str] = mapped_column(String(512))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_mode: Mapped[str | None] = mapped_column(String(16))  # None: service default
    # refuse an add of an active record's exact text (same user and session): 409
    refuse_duplicates: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    tenant: Mapped[TenantRow] = relationship(lazy="joined")


class RecordRow(Base):
    __tablename__ = "memory_records"
    __table_args__ = (
        Index("ix_memory_records_cube_status", "cube_pk", "status"),
        Index("ix_memory_records_cube_user", "cube_pk", "user_id"),
        Index("ix_memory_records_cube_session", "cube_pk", "session_id"),
        Index("ix_memory_records_cube_fact", "cube_pk", "fact_key", "valid_from"),
        # The few records that are KV caches or adapters (`Tiers.tiered_cubes`).
        Index(
            "ix_memory_records_tiered",
            "cube_pk",
            sqlite_where=text(TIERED),
            postgresql_where=text(TIERED),
        ),
        {"sqlite_autoincrement": True},
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"))
    tier: Mapped[str] = mapped_column(String(16), default="plaintext")
    kind: Mapped[str] = mapped_column(String(32), default="fact")
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    user_id: Mapped[str | None] = mapped_column(String(256))
    agent_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(256))
    event_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="active")
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    strength: Mapped[float] = mapped_column(Float, default=1.0)
    recall_count: Mapped[int] = mapped_column(Integer, default=0)
    last_recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    entities: Mapped[list[str]] = mapped_column(JsonType, default=list)
    embedding_precision: Mapped[str] = mapped_column(String(16), default="float32")
    embedding: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    # Sentence keys (retrieval.sentence_keys): float32 rows of embedding_dim, one per key.
    key_embeddings: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    # The time the record's own words name, resolved at write time (retrieval.analyze
    # .stored_anchor; opaque here): what a cold cube's side index would otherwise resolve.
    time_anchor: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # "subject|attribute" of a stated fact ("user:ana|residence"); records sharing it can
    # supersede one another (memsvc/supersession.py).
    fact_key: Mapped[str | None] = mapped_column(String(300))

    cube: Mapped[CubeRow] = relationship(lazy="joined", innerjoin=True)


class VersionRow(Base):
    """A snapshot of a record after each change; version 1 is the record as created."""

    __tablename__ = "record_versions"
    __table_args__ = (UniqueConstraint("record_pk", "version", name="uq_record_versions_version"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_pk: Mapped[int] = mapped_column(
        ForeignKey("memory_records.pk", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    importance: Mapped[float] = mapped_column(Float)
    event_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cause_id: Mapped[str | None] = mapped_column(String(36))  # the record that caused it


class TopicRow(Base):
    """A node of a cube's topic tree (level 0: topic, 1: subtopic); records hang below
    subtopics by `part_of` edges."""

    __tablename__ = "topics"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"), index=True)
    parent_pk: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer, default=0)
    built_n: Mapped[int] = mapped_column(Integer, default=0)  # records when the tree was built
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MaintenanceRunRow(Base):
    """One maintenance pass over one cube and what it changed."""

    __tablename__ = "maintenance_runs"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # The cube's newest change-log seq when the run began: a scheduled tick passes over the
    # cube until a newer change (memsvc/maintenance.py `is_due`). None: run before 0008.
    change_seq: Mapped[int | None] = mapped_column(Integer)


class RecallEventRow(Base):
    """Recalls of one record (`n` of them, flushed together at `at`): the window the
    scheduler reads to promote hot records to the activation tier."""

    __tablename__ = "recall_events"
    __table_args__ = (Index("ix_recall_events_cube_at", "cube_pk", "at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"))
    record_pk: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    n: Mapped[int] = mapped_column(Integer, default=1)


class LeaseRow(Base):
    """A named lease held by one process until `expires_at` (Unix seconds): lets one of
    several workers run the scheduled maintenance while the others stand by."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Float)


class RateBucketRow(Base):
    """A token bucket per API key (a digest of it), shared by every worker on one database.
    `granted` says whether the last take got a token, so one statement both updates and
    answers."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)
    granted: Mapped[bool] = mapped_column(Boolean, default=True)


class IdempotencyKeyRow(Base):
    """An add's idempotency key, written in the add's own transaction: a repeat of the key
    within `expires_at` returns the records it wrote (`record_pks`, in order) instead of
    writing again, if its request digest is the same. Scoped by tenant; dropped with the
    cube."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("tenants.pk", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"), index=True)
    record_pks: Mapped[list[int]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EntityRow(Base):
    __tablename__ = "entities"
    __table_args__ = (
        UniqueConstraint("cube_pk", "normalized", "type", name="uq_entities_cube_name_type"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(512))
    normalized: Mapped[str] = mapped_column(String(512))
    type: Mapped[str] = mapped_column(String(32), default="thing")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EdgeRow(Base):
    """A typed graph edge between two nodes (record, entity or topic), kept in SQL."""

    __tablename__ = "graph_edges"
    __table_args__ = (
        Index("ix_graph_edges_src", "cube_pk", "src_kind", "src_pk"),
        Index("ix_graph_edges_dst", "cube_pk", "dst_kind", "dst_pk"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    src_kind: Mapped[str] = mapped_column(String(16))
    src_pk: Mapped[int] = mapped_column(Integer)
    dst_kind: Mapped[str] = mapped_column(String(16))
    dst_pk: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChangeRow(Base):
    """Change log: one row per record write, so vector indexes can catch up by sequence."""

    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_cube_seq", "cube_pk", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(Integer)
    record_pk: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKeyRow(Base):
    """An API key: only a SHA-256 of its secret is kept; `key_id` is the public lookup part."""

    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tenant: Mapped[TenantRow] = relationship(lazy="joined")


class CubeShareRow(Base):
    """A read-only grant of one cube to another tenant."""

    __tablename__ = "cube_shares"
    __table_args__ = (UniqueConstraint("cube_pk", "tenant_pk", name="uq_cube_shares_cube_tenant"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube_pk: Mapped[int] = mapped_column(ForeignKey("cubes.pk", ondelete="CASCADE"))
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(16), default="read")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
