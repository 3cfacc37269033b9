"""The activation and parametric tiers over HTTP: generate, promote, demote, consolidate.
Each handler is one SDK call on the caller's tenant."""

from __future__ import annotations

from fastapi import APIRouter, status

from memsvc.api.deps import TenantMemory
from memsvc.api.schemas import ConsolidateRequest, Demoted, GenerateRequest, PromoteRequest
from memsvc.models import Generation, MemoryRecord

router = APIRouter(tags=["tiers"])


@router.post("/v1/generate", response_model=Generation)
def generate(body: GenerateRequest, memory: TenantMemory) -> Generation:
    """Answer a prompt with the local LM and the user's recalled memories, reusing KV caches
    of the activation tier; says which memories, cache and adapter it used."""
    return memory.generate(**body.model_dump(exclude_unset=True))


@router.post(
    "/v1/memories/promote", status_code=status.HTTP_201_CREATED, response_model=MemoryRecord
)
def promote(body: PromoteRequest, memory: TenantMemory) -> MemoryRecord:
    """Build a KV cache (activation) or a LoRA adapter (parametric) from plaintext records."""
    return memory.promote(body.record_ids, tier=body.tier)


@router.post("/v1/memories/{record_id}/demote", response_model=Demoted)
def demote(record_id: str, memory: TenantMemory) -> Demoted:
    """Delete a tier record with its file, or the caches built from a plaintext record."""
    return Demoted(removed=memory.demote(record_id))


@router.post(
    "/v1/cubes/{cube}/consolidate",
    status_code=status.HTTP_201_CREATED,
    response_model=MemoryRecord,
)
def consolidate(cube: str, body: ConsolidateRequest, memory: TenantMemory) -> MemoryRecord:
    """Train a LoRA adapter on the cube's memories (minutes on a CPU): a parametric record."""
    return memory.consolidate(cube, **body.model_dump(exclude_unset=True))
