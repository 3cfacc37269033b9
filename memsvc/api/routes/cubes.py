"""/v1/cubes: create, list, get, delete, share, browse the graph, and the portable file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from memsvc.api.deps import TenantMemory
from memsvc.api.schemas import CubeCreate, ShareRequest
from memsvc.models import Cube, GraphPage, MaintenanceRun

router = APIRouter(prefix="/v1/cubes", tags=["cubes"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Cube)
def create_cube(body: CubeCreate, memory: TenantMemory) -> Cube:
    return memory.create_cube(**body.model_dump(exclude_unset=True))


@router.get("", response_model=list[Cube])
def list_cubes(memory: TenantMemory) -> list[Cube]:
    """Your cubes, then cubes other tenants shared with you (access "read")."""
    return memory.list_cubes()


@router.post("/import", status_code=status.HTTP_201_CREATED, response_model=Cube)
async def import_cube(request: Request, memory: TenantMemory, cube: str | None = None) -> Cube:
    """Upload a .memcube file as the raw request body; `cube` renames it."""
    fd, name = tempfile.mkstemp(suffix=".memcube")
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        return await run_in_threadpool(memory.import_cube, Path(name), cube=cube)
    finally:
        os.unlink(name)


@router.get("/{cube}", response_model=Cube)
def get_cube(cube: str, memory: TenantMemory) -> Cube:
    return memory.get_cube(cube)


@router.get("/{cube}/graph", response_model=GraphPage)
def cube_graph(
    cube: str,
    memory: TenantMemory,
    types: str | None = None,
    limit: int = 200,
    cursor: str | None = None,
) -> GraphPage:
    """Edges (comma-separated `types` to filter) and the nodes they touch, paginated."""
    return memory.graph(cube, types=types, limit=limit, cursor=cursor)


@router.post("/{cube}/maintain", response_model=MaintenanceRun)
def maintain_cube(cube: str, memory: TenantMemory) -> MaintenanceRun:
    """Run maintenance on the cube now (supersession, organization, forgetting, index
    catch-up) and return what it changed; idempotent."""
    return memory.maintain(cube)[0]


@router.get("/{cube}/maintenance", response_model=MaintenanceRun | None)
def cube_maintenance(cube: str, memory: TenantMemory) -> MaintenanceRun | None:
    """The cube's latest finished maintenance run (null when none has run)."""
    runs = memory.maintenance_runs(cube)
    return runs[0] if runs else None


@router.delete("/{cube}", status_code=status.HTTP_204_NO_CONTENT)
def delete_cube(cube: str, memory: TenantMemory) -> Response:
    memory.delete_cube(cube)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{cube}/share", response_model=Cube)
def share_cube(cube: str, body: ShareRequest, memory: TenantMemory) -> Cube:
    """Grant another tenant read-only access; they reach it by the cube's id."""
    return memory.share_cube(cube, body.tenant)


@router.delete("/{cube}/share/{tenant}", response_model=Cube)
def unshare_cube(cube: str, tenant: str, memory: TenantMemory) -> Cube:
    """Revoke a tenant's read access (a no-op if it had none); returns the cube."""
    return memory.unshare_cube(cube, tenant)


@router.post(
    "/{cube}/export",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}, "description": "The cube file."}},
)
def export_cube(cube: str, memory: TenantMemory) -> FileResponse:
    """Stream the cube as one portable .memcube file (counts in X-Memsvc-* headers)."""
    fd, name = tempfile.mkstemp(suffix=".memcube")
    os.close(fd)
    try:
        counts = memory.export_cube(cube, Path(name))
    except BaseException:
        os.unlink(name)
        raise
    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in cube) + ".memcube"
    headers = {f"X-Memsvc-{k.capitalize()}": str(v) for k, v in counts.items()}
    return FileResponse(
        name,
        media_type="application/gzip",
        filename=filename,
        headers=headers,
        background=BackgroundTask(os.unlink, name),
    )
