"""What the store hands up: plain frozen snapshots of its rows, never an ORM row or session.

Field names match the ORM rows (`RecordRow`, `CubeRow`, `VersionRow`), so code reads
`record.content` whichever side it sits on; changing a record is a repository call, never an
attribute assignment. The core turns these into the public models in one place
(`memsvc/_convert.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "ApiKeyData",
    "CubeActivity",
    "CubeData",
    "EdgeData",
    "EntityData",
    "IdempotencyKeyData",
    "RecordData",
    "RunData",
    "VersionData",
    "new_id",
]


def new_id() -> str:
    """A record or cube id: ours to issue, never taken from input."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class CubeData:
    pk: int
    id: str
    tenant_pk: int
    tenant: str
    name: str
    description: str | None
    owner_user_id: str | None
    embedding_model: str
    embedding_dim: int
    meta: dict[str, Any]
    created_at: datetime
    search_mode: str | None
    refuse_duplicates: bool = False

    @classmethod
    def of(cls, row: Any) -> CubeData:
        return cls(
            pk=row.pk,
            id=row.id,
            tenant_pk=row.tenant_pk,
            tenant=row.tenant.name,
            name=row.name,
            description=row.description,
            owner_user_id=row.owner_user_id,
            embedding_model=row.embedding_model,
            embedding_dim=row.embedding_dim,
            meta=dict(row.meta or {}),
            created_at=row.created_at,
            search_mode=row.search_mode,
            refuse_duplicates=bool(row.refuse_duplicates),
        )


@dataclass(frozen=True, slots=True)
class RecordData:
    pk: int
    id: str
    cube_pk: int
    tier: str
    kind: str
    content: str
    source: dict[str, Any]
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    event_time: datetime | None
    valid_from: datetime | None
    valid_to: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    status: str
    importance: float
    strength: float
    recall_count: int
    last_recalled_at: datetime | None
    tags: list[str]
    entities: list[str]
    embedding_precision: str
    meta: dict[str, Any]
    pinned: bool
    fact_key: str | None

    @classmethod
    def of(cls, row: Any) -> RecordData:
        """From an ORM row or a plain result row with the same attribute names."""
        return cls(
            **{f: getattr(row, f) for f in _RECORD_FIELDS},
            source=dict(row.source or {}),
            tags=list(row.tags or []),
            entities=list(row.entities or []),
            meta=dict(row.meta or {}),
            pinned=bool(row.pinned),
        )


_RECORD_FIELDS = tuple(
    f.name
    for f in fields(RecordData)
    if f.name not in ("source", "tags", "entities", "meta", "pinned")
)


@dataclass(frozen=True, slots=True)
class VersionData:
    record_pk: int
    version: int
    change: str
    content: str
    kind: str
    status: str
    tags: list[str]
    importance: float
    event_time: datetime | None
    valid_from: datetime | None
    valid_to: datetime | None
    meta: dict[str, Any]
    changed_at: datetime
    cause_id: str | None

    @classmethod
    def of(cls, row: Any) -> VersionData:
        return cls(
            **{f.name: getattr(row, f.name) for f in fields(cls) if f.name not in ("tags", "meta")},
            tags=list(row.tags or []),
            meta=dict(row.meta or {}),
        )


@dataclass(frozen=True, slots=True)
class EntityData:
    pk: int
    name: str
    normalized: str
    type: str


@dataclass(frozen=True, slots=True)
class EdgeData:
    pk: int
    type: str
    src_kind: str
    src_pk: int
    dst_kind: str
    dst_pk: int
    weight: float
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunData:
    """One maintenance run of one cube (`finished_at` None while it runs)."""

    pk: int
    cube_pk: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class CubeActivity:
    """A cube's newest maintenance run (any trigger, finished or not; all None: never run)
    beside its newest change-log seq (0: none) and newest recall event time."""

    cube_pk: int
    run_started_at: datetime | None
    run_finished_at: datetime | None
    run_error: str | None
    run_change_seq: int | None  # the cube's newest change seq when that run began
    newest_change_seq: int
    newest_recall_at: datetime | None


@dataclass(frozen=True, slots=True)
class IdempotencyKeyData:
    """An add's idempotency key: the digest of its request and the records it wrote."""

    tenant_pk: int
    key: str
    digest: str
    cube_pk: int
    record_pks: tuple[int, ...]
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyData:
    """An API key as stored: the secret only as its SHA-256; `tenant` is the tenant's name."""

    pk: int
    key_id: str
    tenant_pk: int
    tenant: str
    secret_hash: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass
class RecordQuery:
    """Conditions on records; every field left at its default matches everything."""

    statuses: tuple[str, ...] = ("active",)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    kinds: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    valid_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def is_trivial(self) -> bool:
        return self == RecordQuery(statuses=self.statuses)

    def matches(self, row: Any) -> bool:
        """The same conditions in Python, for rows already loaded (tags/metadata included)."""
        if self.statuses and row.status not in self.statuses:
            return False
        for attr in ("user_id", "agent_id", "session_id"):
            want = getattr(self, attr)
            if want is not None and getattr(row, attr) != want:
                return False
        if self.kinds and row.kind not in self.kinds:
            return False
        if self.tiers and row.tier not in self.tiers:
            return False
        when = row.event_time or row.created_at
        if self.since is not None and when < self.since:
            return False
        if self.until is not None and when > self.until:
            return False
        if self.valid_at is not None:
            if row.valid_from is not None and row.valid_from > self.valid_at:
                return False
            if row.valid_to is not None and row.valid_to <= self.valid_at:
                return False
        if self.tags and not set(self.tags) <= set(row.tags or ()):
            return False
        meta = row.meta or {}
        return all(meta.get(k) == v for k, v in self.metadata.items())
