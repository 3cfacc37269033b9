"""App factory: one `Memory` per process, shared by every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import health, memories
from memsvc import Memory, Settings, __version__, get_settings

__all__ = ["create_app"]


def create_app(memory: Memory | None = None, *, settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app; `memory` is opened from `settings` at startup when not given."""
    owned = memory is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            app.state.memory = Memory(settings=settings or get_settings())
            app.state.memory.embedder.encode(["warm up"])  # load the model before serving
        else:
            app.state.memory = memory
        try:
            yield
        finally:
            if owned:
                app.state.memory.close()

    app = FastAPI(title="memsvc", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(memories.router)
    return app
