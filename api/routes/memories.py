"""/v1/memories: add, search, get, delete. Each handler is one SDK call."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import MemoryDep
from api.schemas import AddRequest, SearchRequest
from memsvc.models import Hit, MemoryRecord

router = APIRouter(prefix="/v1/memories", tags=["memories"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=list[MemoryRecord])
def add_memories(body: AddRequest, memory: MemoryDep) -> list[MemoryRecord]:
    return memory.add(**body.model_dump(exclude_unset=True))


@router.post("/search", response_model=list[Hit])
def search_memories(body: SearchRequest, memory: MemoryDep) -> list[Hit]:
    return memory.recall(**body.model_dump(exclude_unset=True))


@router.get("/{record_id}", response_model=MemoryRecord)
def get_memory(record_id: str, memory: MemoryDep) -> MemoryRecord:
    return memory.get(record_id)


@router.delete("/{record_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_memory(record_id: str, memory: MemoryDep, hard: bool = False) -> Response:
    memory.delete(record_id, hard=hard)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
