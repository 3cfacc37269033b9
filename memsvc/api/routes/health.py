"""Liveness, readiness and metrics: open to probes, but what spans tenants is the operator's.

`/healthz` and the status of `/readyz` need no key (probes send none). Cube counts on
`/readyz` and the per-cube series of `/metrics` need the operator token
(`MEMSVC_OPERATOR_TOKEN`); with one set, `/metrics` refuses anyone else. Database errors
are logged, never echoed. Both read the cube figures through one cache, so probing them
costs no database scan per call.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from memsvc.api.deps import AppSettings, is_operator, require_operator
from memsvc.api.metrics import StatsUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, settings: AppSettings) -> JSONResponse:
    """200 once the database answers and the model is loaded (cube indexes load on first
    use); the operator also gets how many cubes there are and how many are loaded."""
    ready = request.app.state.ready.is_set()
    try:
        stats = request.app.state.metrics.stats.get()
    except StatsUnavailable:  # the database is unreachable: not ready, never a 500
        return JSONResponse({"status": "unavailable"}, status_code=503)
    body: dict[str, object] = {"status": "ready" if ready else "starting"}
    if is_operator(request, settings):
        body["cubes"] = len(stats)
        body["indexes_loaded"] = sum(1 for s in stats if s["index_vectors"] is not None)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
def metrics(request: Request, settings: AppSettings) -> Response:
    """Prometheus text format: request series and tenant-free totals; per-cube series for
    the operator."""
    per_cube = require_operator(request, settings)
    return Response(
        request.app.state.metrics.render(per_cube=per_cube),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
