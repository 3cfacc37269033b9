"""App factory: one `Memory` per process, shared by every request; one /v1 surface."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute

from memsvc import Memory, Settings, __version__, get_settings, tracing
from memsvc.api import gc_pauses
from memsvc.api.errors import install_error_handlers
from memsvc.api.limits import BodyLimitMiddleware, LoopbackOnlyMiddleware, is_loopback
from memsvc.api.mcp_http import mount_mcp
from memsvc.api.metrics import Metrics
from memsvc.api.routes import cubes, health, mem0, memories, tiers
from memsvc.api.traces import TracingMiddleware
from memsvc.maintenance import Scheduler

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger(__name__)


def _operation_id(route: APIRoute) -> str:
    return route.name


def _warm_up(memory: Memory, ready: threading.Event, *, freeze: bool) -> None:
    """Load the model, then report ready. Cube indexes load on first use, within the budget
    (`MEMSVC_INDEX_MEMORY_BYTES`): waiting for every cube would make start-up as slow as
    the number of tenants, and the memory as large. `freeze`: exempt what start-up made
    from the garbage collector's full passes (memsvc/api/gc_pauses.py)."""
    try:
        memory.embedder.encode(["warm up"])
        if freeze:
            log.info("froze %d start-up objects", gc_pauses.freeze_startup_objects())
        ready.set()
    except Exception:  # readiness stays false; /readyz tells
        log.exception("warm-up failed")


def create_app(memory: Memory | None = None, *, settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app. `memory` (tests) is used as is; otherwise one is opened from
    `settings` at startup and closed (indexes saved) at shutdown."""
    settings = settings or (memory.settings if memory is not None else get_settings())
    if not settings.auth and not is_loopback(settings.host):
        # Without keys anyone who reaches the port owns the data: the CLI refuses such a bind,
        # and so does the app however it is started (uvicorn --factory, MEMSVC_AUTH=false).
        raise ValueError(
            f"MEMSVC_AUTH=false serves loopback only, but MEMSVC_HOST is {settings.host!r}"
        )
    owned = memory is None
    mem = memory or Memory(settings=settings)
    ready = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's thread pool (40 by default); on a small machine more
        # threads than that only contend for the GIL and the cores.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        # Only a worker that owns its Memory (a served process) freezes: an embedding app
        # (tests, a caller's own process) keeps its garbage collector as it was.
        freeze = owned and settings.gc_freeze
        switch = sys.getswitchinterval()
        if owned:  # hot recalls get the GIL back quickly from cold cubes' builds
            sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
        threading.Thread(
            target=_warm_up, args=(mem, ready), kwargs={"freeze": freeze}, daemon=True
        ).start()
        scheduler = None
        if settings.maintain_seconds > 0:  # organize, supersede, forget in the background
            # Several workers on one database: the lease lets one run it, the rest stand by.
            lease = mem.maintenance_lease(ttl=max(2 * settings.maintain_seconds, 60.0))
            # A tick maintains only the cubes due; `mem.maintain_all()` (a user's call) all.
            scheduler = Scheduler(mem.maintain_due, settings.maintain_seconds, lease=lease)
            scheduler.start()
        app.state.scheduler = scheduler
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if owned:
                mem.close()
            if freeze:
                gc_pauses.unfreeze()
            sys.setswitchinterval(switch)

    app = FastAPI(
        title="memsvc",
        version=__version__,
        description="Long-term memory for LLM agents. Authenticate with `Authorization: "
        "Bearer <key>` (keys from `memsvc keys create --tenant NAME`).",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.memory = mem
    app.state.settings = settings
    app.state.ready = ready
    app.state.metrics = Metrics(mem, cache_seconds=settings.metrics_cache_seconds)
    install_error_handlers(app)
    for router in (health.router, tiers.router, memories.router, cubes.router, mem0.router):
        app.include_router(router)
    mcp_server = mount_mcp(app, mem, auth=settings.auth)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_bytes,
        import_limit=settings.max_import_bytes,
    )
    if not settings.auth:  # refused before anything reads the body
        app.add_middleware(LoopbackOnlyMiddleware)
    app.add_middleware(lambda inner: app.state.metrics.middleware(inner))
    if tracing.active():  # OTEL_* (read when the Memory opened) or tracing.enable()
        app.add_middleware(TracingMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker serving: settings from MEMSVC_*."""
    return create_app(settings=Settings())
