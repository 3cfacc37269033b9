"""Liveness: the process answers and its database can be read."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import MemoryDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(memory: MemoryDep) -> dict[str, object]:
    cubes = memory.list_cubes()
    return {"status": "ok", "cubes": len(cubes)}
