"""/v1/memories: each handler is one SDK call on the caller's tenant."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import TypeAdapter

from memsvc.api.deps import TenantMemory
from memsvc.api.schemas import AddRequest, SearchRequest, UpdateRequest
from memsvc.errors import IdempotencyKeyReused, InvalidInput
from memsvc.models import Filters, Hit, MemoryRecord, Neighbor, Page, RecordVersion
from memsvc.validation import check_idempotency_key

router = APIRouter(prefix="/v1/memories", tags=["memories"])
_HITS = TypeAdapter(list[Hit])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=list[MemoryRecord])
def add_memories(
    body: AddRequest,
    memory: TenantMemory,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters (e.g. a UUID): a repeat with the same "
            "body returns the first add's records (Idempotent-Replayed: true) without writing; "
            "with another body it is a 409 idempotency_key_reused.",
        ),
    ] = None,
) -> list[MemoryRecord]:
    """Store text (one record per string) or chat messages (one record per message)."""
    key = check_idempotency_key(idempotency_key, field="Idempotency-Key")
    try:
        added = memory.add(**body.model_dump(exclude_unset=True), idempotency_key=key)
    except IdempotencyKeyReused as exc:  # name the header, as the caller sent it
        raise IdempotencyKeyReused(exc.message, details={"field": "Idempotency-Key"}) from exc
    if added.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return added


@router.post("/search", response_model=list[Hit])
async def search_memories(body: SearchRequest, memory: TenantMemory) -> Response:
    """The k most relevant records, best first, with per-channel explanations."""
    # The hot path: the embedding is awaited (no pool thread is held), the search runs in a
    # pool thread (a cold cube's index load must not stall the loop), and the hits are
    # serialized once, without re-validating what are already models.
    hits = await memory.arecall(**body.model_dump(exclude_unset=True))
    return Response(_HITS.dump_json(hits), media_type="application/json")


@router.get("", response_model=Page)
def list_memories(
    memory: TenantMemory,
    user_id: str | None = None,
    cube: str | None = None,
    status_: Annotated[
        Literal["active", "archived", "deleted", "all"], Query(alias="status")
    ] = "active",
    limit: int = 50,
    cursor: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    kinds: Annotated[list[str] | None, Query()] = None,
    tags: Annotated[list[str] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    metadata: Annotated[str | None, Query(description="JSON object; equality per key.")] = None,
    tiers: Annotated[list[Literal["plaintext", "activation", "parametric"]] | None, Query()] = None,
) -> Page:
    """Records of a cube (the user's default cube unless `cube` is given), oldest first."""
    meta: object = {}
    if metadata is not None:
        try:
            meta = json.loads(metadata)
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise InvalidInput("metadata must be a JSON object", details={"field": "metadata"})
    filters = Filters(
        agent_id=agent_id,
        session_id=session_id,
        kinds=kinds or [],
        tags=tags or [],
        since=since,
        until=until,
        metadata=meta,
        tiers=tiers or [],
    )
    return memory.list(
        user_id=user_id, cube=cube, filters=filters, status=status_, limit=limit, cursor=cursor
    )


@router.get("/{record_id}", response_model=MemoryRecord)
def get_memory(record_id: str, memory: TenantMemory) -> MemoryRecord:
    return memory.get(record_id)


@router.patch("/{record_id}", response_model=MemoryRecord)
def update_memory(record_id: str, body: UpdateRequest, memory: TenantMemory) -> MemoryRecord:
    """Change a record; the previous version stays in its history."""
    return memory.update(record_id, **body.model_dump(exclude_unset=True))


@router.delete("/{record_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_memory(record_id: str, memory: TenantMemory, hard: bool = False) -> Response:
    """Soft delete by default; `hard=true` purges the record and its history."""
    memory.delete(record_id, hard=hard)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{record_id}/history", response_model=list[RecordVersion])
def memory_history(record_id: str, memory: TenantMemory) -> list[RecordVersion]:
    return memory.history(record_id)


@router.post("/{record_id}/restore", response_model=MemoryRecord)
def restore_memory(record_id: str, memory: TenantMemory) -> MemoryRecord:
    """Bring back an archived or soft-deleted record (retention reset, full-precision vector)."""
    return memory.restore(record_id)


@router.get("/{record_id}/lineage", response_model=list[MemoryRecord])
def memory_lineage(record_id: str, memory: TenantMemory) -> list[MemoryRecord]:
    """The supersession chain through the record, oldest first."""
    return memory.lineage(record_id)


@router.get("/{record_id}/neighbors", response_model=list[Neighbor])
def memory_neighbors(
    record_id: str, memory: TenantMemory, types: str | None = None, depth: int = 1
) -> list[Neighbor]:
    """Records and entities within `depth` hops (comma-separated edge `types` to filter)."""
    return memory.neighbors(record_id, types=types, depth=depth)
