"""Request bodies; responses reuse the SDK's public models so both faces match exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memsvc.models import Filters, Message

__all__ = ["AddRequest", "CubeCreate", "SearchRequest", "ShareRequest", "UpdateRequest"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddRequest(_Body):
    text: str | list[str] | None = Field(default=None, description="One text or a list.")
    messages: list[Message] | None = Field(default=None, description="Chat messages.")
    user_id: str
    agent_id: str | None = None
    session_id: str | None = None
    cube: str | None = Field(default=None, description="Cube name or id; default the user's.")
    metadata: dict[str, Any] | None = None
    timestamp: datetime | None = Field(default=None, description="When it happened.")
    kind: str | None = None
    tags: list[str] | None = None
    importance: float | None = None
    pinned: bool = Field(default=False, description="Pinned records never fade.")


class SearchRequest(_Body):
    query: str
    user_id: str
    k: int = 10
    filters: Filters | None = None
    at: datetime | None = Field(default=None, description="Reference time (default now).")
    cube: str | None = None
    recipe: str | dict[str, Any] | None = Field(
        default=None,
        description="Channels and fusion: a preset (fast, balanced, deep), a compact string "
        "('dense=1+keyword=1|rrf20') or an object {channels: {name: weight}, fusion, rrf_k, "
        "candidates, k}; omitted: the service default.",
    )


class UpdateRequest(_Body):
    text: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    importance: float | None = None
    kind: str | None = None
    event_time: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    pinned: bool | None = None


class CubeCreate(_Body):
    name: str
    description: str | None = None
    owner_user_id: str | None = None
    metadata: dict[str, Any] | None = None
    search_mode: str | None = Field(
        default=None,
        max_length=16,
        description='Vector index spec ("Flat", "SQ8,Rescore20", "RBin,Rescore20") or mode name '
        '("exact", "int8", "binary+rescore"); omitted: the service default.',
    )
    refuse_duplicates: bool = Field(
        default=False,
        description="Refuse (409 duplicate_record) an add of an active record's exact text "
        "from the same user and session.",
    )


class ShareRequest(_Body):
    tenant: str = Field(description="The tenant that gets read-only access.")


class GenerateRequest(_Body):
    prompt: str
    user_id: str
    cube: str | None = None
    k: int = Field(default=5, description="Memories recalled into the prompt (0: none).")
    use_cache: bool = Field(default=True, description="Use KV caches of the activation tier.")
    adapter: str | None = Field(default=None, description="A parametric record's id.")
    max_tokens: int = 64
    filters: Filters | None = None
    recipe: str | dict[str, Any] | None = None


class PromoteRequest(_Body):
    record_ids: list[str] = Field(description="Plaintext records, in prompt order.")
    tier: Literal["activation", "parametric"] = "activation"


class ConsolidateRequest(_Body):
    record_ids: list[str] | None = Field(
        default=None, description="Records to train on (default: every active one)."
    )
    steps: int | None = None
    rank: int | None = None
    learning_rate: float | None = None


class Demoted(BaseModel):
    removed: list[str]
