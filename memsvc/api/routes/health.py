"""Liveness, readiness and metrics (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from memsvc.api.deps import RootMemory

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, memory: RootMemory) -> JSONResponse:
    """200 once the database answers, the model is loaded and every cube index is loaded."""
    ready = request.app.state.ready.is_set()
    body: dict[str, object] = {"status": "ready" if ready else "starting"}
    try:
        stats = memory.cube_stats()
    except Exception as exc:  # the database is unreachable: not ready, never a 500
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    body["cubes"] = len(stats)
    body["indexes_loaded"] = sum(1 for s in stats if s["index_vectors"] is not None)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
