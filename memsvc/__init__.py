"""memsvc: long-term memory for LLM agents.

from memsvc import Memory
mem = Memory()                      # data under $MEMSVC_HOME or ./.memsvc
mem.add("I moved to Berlin.", user_id="alice")
mem.recall("where does alice live", user_id="alice")
"""

from memsvc.client import AsyncMemoryClient, MemoryClient
from memsvc.clock import Clock, ManualClock, SystemClock
from memsvc.config import Settings, get_settings
from memsvc.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.errors import (
    AuthError,
    Conflict,
    CubeNotFound,
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
    "Embedder",
    "Filters",
    "Generation",
    "GraphEdge",
    "GraphNode",
    "GraphPage",
    "Hit",
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

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "memsvc"
