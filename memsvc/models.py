"""Public shapes returned by `Memory` and `MemoryClient` (and sent over REST).

Internals such as embeddings and database keys never appear here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKey",
    "Cube",
    "Filters",
    "Hit",
    "IndexInfo",
    "MaintenanceRun",
    "MemoryRecord",
    "Message",
    "Page",
    "RecordVersion",
]

Tier = Literal["plaintext", "activation", "parametric"]
Status = Literal["active", "archived", "deleted"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class MemoryRecord(_Frozen):
    """One memory in one cube, in one tier."""

    id: str
    cube_id: str
    cube: str
    tier: Tier = "plaintext"
    kind: str
    content: str
    source: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    event_time: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int
    status: Status
    importance: float
    strength: float
    recall_count: int
    last_recalled_at: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    embedding_precision: str = "float32"
    metadata: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False


class Hit(_Frozen):
    """A recalled record, its fused score and how each channel ranked it."""

    record: MemoryRecord
    score: float
    explain: dict[str, dict[str, float | int]] = Field(default_factory=dict)


class RecordVersion(_Frozen):
    """A record as it stood after one change (version 1 is the record as created)."""

    record_id: str
    version: int
    change: Literal["create", "update", "delete", "restore", "archive", "supersede", "merge"]
    content: str
    kind: str
    status: Status
    tags: list[str] = Field(default_factory=list)
    importance: float
    event_time: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    changed_at: datetime
    cause_id: str | None = Field(
        default=None, description="The record that superseded or absorbed this one."
    )


class Page(_Frozen):
    """One page of a listing; pass `next_cursor` back to get the next one (None: no more)."""

    items: list[MemoryRecord]
    next_cursor: str | None = None


SearchMode = Literal["exact", "int8", "binary+rescore"]


class Cube(_Frozen):
    """A named container of records. `access` is "owner", or "read" for a cube another
    tenant shared with you; `shared_with` lists the tenants you shared it with."""

    id: str
    name: str
    description: str | None = None
    owner_user_id: str | None = None
    embedding_model: str
    embedding_dim: int
    created_at: datetime
    records: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    access: Literal["owner", "read"] = "owner"
    shared_with: list[str] = Field(default_factory=list)
    search_mode: SearchMode | None = Field(
        default=None, description="Vector search mode; null means the service default."
    )


class ApiKey(_Frozen):
    """An API key's public part; the secret is shown once, at creation."""

    key_id: str
    tenant: str
    name: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class IndexInfo(_Frozen):
    cube: str
    vectors: int
    seq: int
    db_seq: int
    file: str
    file_exists: bool
    last_rebuild_reason: str | None = None
    mode: str = Field(default="exact", description="The search mode the index runs in.")


class Message(BaseModel):
    """A chat message to store as one episode record."""

    model_config = ConfigDict(extra="forbid")

    role: str = "user"
    content: str
    name: str | None = Field(default=None, description="Speaker name, when not the role.")
    timestamp: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Filters(BaseModel):
    """Conditions a record must meet to be recalled or listed. Unset fields match all."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    kinds: list[str] = Field(default_factory=list)
    tiers: list[Tier] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, description="Records must carry all of these.")
    since: datetime | None = Field(default=None, description="Event time at or after.")
    until: datetime | None = Field(default=None, description="Event time at or before.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Equality per key.")
    statuses: list[Status] = Field(default_factory=lambda: ["active"])


EdgeType = Literal["part_of", "mentions", "follows", "related", "supersedes"]
EDGE_TYPES: tuple[str, ...] = (
    "part_of",
    "mentions",
    "follows",
    "related",
    "supersedes",
    "duplicate_of",
)


class GraphNode(_Frozen):
    """A record (`record:<id>`), an entity (`entity:<n>`) or a topic (`topic:<n>`)."""

    id: str
    kind: Literal["record", "entity", "topic"]
    label: str  # the record's text (first 200 characters) or the entity's name
    type: str  # the record's kind, the entity's type, or "topic" / "subtopic"


class GraphEdge(_Frozen):
    type: str
    source: str
    target: str
    weight: float = 1.0


class GraphPage(_Frozen):
    """Edges (oldest first) and the nodes they touch; pass `next_cursor` back for more."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    next_cursor: str | None = None


class Neighbor(_Frozen):
    node: GraphNode
    edge: str  # the type of the edge that reached it
    direction: Literal["out", "in"]  # out: the edge starts at the nearer node
    hops: int


class MaintenanceRun(_Frozen):
    """One maintenance pass over a cube: what it changed, by pass."""

    cube: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
