"""Request bodies; responses reuse the SDK's public models so both faces match exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memsvc.models import Filters, Message

__all__ = ["AddRequest", "SearchRequest"]


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | list[str] | None = None
    messages: list[Message] | None = None
    user_id: str
    agent_id: str | None = None
    session_id: str | None = None
    cube: str | None = None
    metadata: dict[str, Any] | None = None
    timestamp: datetime | None = None
    kind: str | None = None
    tags: list[str] | None = None
    importance: float | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str
    user_id: str
    k: int = Field(default=10)
    filters: Filters | None = None
    at: datetime | None = None
    cube: str | None = None
