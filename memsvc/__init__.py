"""memsvc: long-term memory for LLM agents.

from memsvc import Memory
mem = Memory()                      # data under $MEMSVC_HOME or ./.memsvc
mem.add("I moved to Berlin.", user_id="alice")
mem.recall("where does alice live", user_id="alice")

The public names load on first use, so `import memsvc.kernels` (say, on a GPU machine that
has only torch and Triton) does not import the SDK, the database layer or the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memsvc.client import AsyncMemoryClient, MemoryClient
    from memsvc.clock import Clock, ManualClock, SystemClock
    from memsvc.config import Settings, get_settings
    from memsvc.embedder import Embedder, SentenceTransformerEmbedder
    from memsvc.errors import (
        AuthError,
        Conflict,
        CubeNotFound,
        DuplicateRecord,
        IdempotencyKeyReused,
        InvalidInput,
        MemsvcError,
        ModelUnavailable,
        NotFound,
        PayloadTooLarge,
        PermissionDenied,
        RateLimited,
        RecordNotFound,
        StorageError,
    )
    from memsvc.memory import Memory
    from memsvc.models import (
        ApiKey,
        Cube,
        Filters,
        Generation,
        GraphEdge,
        GraphNode,
        GraphPage,
        Hit,
        IndexInfo,
        MaintenanceRun,
        MemoryRecord,
        Message,
        Neighbor,
        Page,
        RecordVersion,
    )

__version__ = "0.1.0"

__all__ = [
    "ApiKey",
    "AsyncMemoryClient",
    "AuthError",
    "Clock",
    "Conflict",
    "Cube",
    "CubeNotFound",
    "DuplicateRecord",
    "Embedder",
    "Filters",
    "Generation",
    "GraphEdge",
    "GraphNode",
    "GraphPage",
    "Hit",
    "IdempotencyKeyReused",
    "IndexInfo",
    "InvalidInput",
    "MaintenanceRun",
    "ManualClock",
    "Memory",
    "MemoryClient",
    "MemoryRecord",
    "MemsvcError",
    "Message",
    "ModelUnavailable",
    "Neighbor",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RecordNotFound",
    "RecordVersion",
    "SentenceTransformerEmbedder",
    "Settings",
    "StorageError",
    "SystemClock",
    "get_settings",
]


_SOURCES = {
    "memsvc.client": (
        "AsyncMemoryClient",
        "MemoryClient",
    ),
    "memsvc.clock": (
        "Clock",
        "ManualClock",
        "SystemClock",
    ),
    "memsvc.config": (
        "Settings",
        "get_settings",
    ),
    "memsvc.embedder": (
        "Embedder",
        "SentenceTransformerEmbedder",
    ),
    "memsvc.errors": (
        "AuthError",
        "Conflict",
        "CubeNotFound",
        "DuplicateRecord",
        "IdempotencyKeyReused",
        "InvalidInput",
        "MemsvcError",
        "ModelUnavailable",
        "NotFound",
        "PayloadTooLarge",
        "PermissionDenied",
        "RateLimited",
        "RecordNotFound",
        "StorageError",
    ),
    "memsvc.memory": ("Memory",),
    "memsvc.models": (
        "ApiKey",
        "Cube",
        "Filters",
        "Generation",
        "GraphEdge",
        "GraphNode",
        "GraphPage",
        "Hit",
        "IndexInfo",
        "MaintenanceRun",
        "MemoryRecord",
        "Message",
        "Neighbor",
        "Page",
        "RecordVersion",
    ),
}


def _load() -> None:
    """Import the public face, all of it at once (as an eager `import memsvc` used to)."""
    import importlib

    for module, names in _SOURCES.items():
        loaded = importlib.import_module(module)
        for name in names:
            obj = getattr(loaded, name)
            if isinstance(obj, type):
                obj.__module__ = "memsvc"
            globals()[name] = obj


def __getattr__(name: str) -> Any:
    if name in __all__:
        _load()
        return globals()[name]
    raise AttributeError(f"module 'memsvc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
