"""Store snapshots to public models: the one place that knows both shapes."""

from __future__ import annotations

from memsvc.models import Cube, MemoryRecord, RecordVersion
from memsvc.store.data import CubeData, RecordData, VersionData

__all__ = ["cube_model", "record_model", "version_model"]


# What a record's source says of other records the owner may hide from a reader: the
# archived duplicates a merge folded into it (their ids, sessions and provenance).
OWNER_ONLY_SOURCE = ("merged",)


def record_model(row: RecordData, cube: CubeData, *, reader: bool = False) -> MemoryRecord:
    """`reader`: as a tenant the cube is shared with sees it, without `OWNER_ONLY_SOURCE`."""
    source = row.source or {}
    if reader and any(k in source for k in OWNER_ONLY_SOURCE):
        source = {k: v for k, v in source.items() if k not in OWNER_ONLY_SOURCE}
    return MemoryRecord(
        id=row.id,
        cube_id=cube.id,
        cube=cube.name,
        tier=row.tier,
        kind=row.kind,
        content=row.content,
        source=source,
        user_id=row.user_id,
        agent_id=row.agent_id,
        session_id=row.session_id,
        event_time=row.event_time,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        status=row.status,
        importance=row.importance,
        strength=row.strength,
        recall_count=row.recall_count,
        last_recalled_at=row.last_recalled_at,
        tags=list(row.tags or []),
        entities=list(row.entities or []),
        embedding_precision=row.embedding_precision,
        metadata=row.meta or {},
        pinned=row.pinned,
    )


def version_model(record_id: str, row: VersionData) -> RecordVersion:
    return RecordVersion(
        record_id=record_id,
        version=row.version,
        change=row.change,
        content=row.content,
        kind=row.kind,
        status=row.status,
        tags=list(row.tags or []),
        importance=row.importance,
        event_time=row.event_time,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        metadata=row.meta or {},
        changed_at=row.changed_at,
        cause_id=row.cause_id,
    )


def cube_model(
    row: CubeData, records: int = 0, *, access: str = "owner", shared_with: list[str] | None = None
) -> Cube:
    return Cube(
        id=row.id,
        name=row.name,
        description=row.description,
        owner_user_id=row.owner_user_id,
        embedding_model=row.embedding_model,
        embedding_dim=row.embedding_dim,
        created_at=row.created_at,
        records=records,
        metadata=row.meta or {},
        access=access,
        shared_with=shared_with or [],
        search_mode=row.search_mode,
        refuse_duplicates=row.refuse_duplicates,
    )
