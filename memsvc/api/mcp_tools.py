"""The memory tools over MCP: the same calls as the SDK, named and described for a model.

One `MCPServer` serves both transports: `memsvc mcp` runs it on stdio for a local agent, and
`memsvc serve` mounts it at `/mcp` (streamable HTTP, behind the API-key auth). `resolve`
turns a tool call's context into the `Memory` of the caller's tenant. Results are compact
(id, content, time, score): a model reads them, so nothing it cannot use is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from memsvc import Memory, __version__
from memsvc.errors import MemsvcError
from memsvc.models import MemoryRecord

__all__ = ["INSTRUCTIONS", "build_mcp_server"]

INSTRUCTIONS = """\
Long-term memory for this conversation's user, kept across sessions.
- Before answering anything that may depend on earlier conversations (the user's facts,
  preferences, plans, people, past events), call `recall` with a short query.
- When the user tells you something worth keeping, call `add_memory` with it as one short
  self-contained statement (or pass the chat `messages` to keep them as they were said).
- A newer statement of a fact closes the older one by itself; use `update_memory` to correct
  a memory and `delete_memory` when the user asks to forget it.
Every memory belongs to a `user_id`: use the same one for the same person every time."""

UserId = Annotated[
    str,
    Field(description="Whose memory: a stable id of the person (e.g. 'alice'). Required."),
]
MemoryId = Annotated[str, Field(description="A memory id, as returned by add_memory or recall.")]


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "system", "tool"] = Field(
        default="user", description="Who said it."
    )
    content: str = Field(description="What was said.")
    name: str | None = Field(default=None, description="The speaker's name, if known.")


def _time(rec: MemoryRecord) -> str:
    when: datetime = rec.event_time or rec.created_at
    return when.isoformat(timespec="seconds")


def _compact(rec: MemoryRecord, score: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rec.id, "content": rec.content, "time": _time(rec)}
    if score is not None:
        out["score"] = round(score, 4)
    if rec.status != "active":
        out["status"] = rec.status
    return out


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """A caller's mistake reaches the model as a tool error it can read and correct."""
    try:
        yield
    except MemsvcError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from exc


def build_mcp_server(resolve: Callable[[Context], Memory]) -> MCPServer:
    server = MCPServer("memsvc", instructions=INSTRUCTIONS, version=__version__)

    @server.tool(
        name="add_memory",
        description="Store something worth remembering about a user: give `text` (one "
        "self-contained statement, e.g. 'Alice is allergic to peanuts') or `messages` (chat "
        "turns, kept one memory per turn). Returns the stored memories with their ids.",
    )
    def add_memory(
        user_id: UserId,
        ctx: Context,
        text: Annotated[str | None, Field(description="The statement to remember.")] = None,
        messages: Annotated[
            list[ChatMessage] | None, Field(description="Chat turns to remember as said.")
        ] = None,
        agent_id: Annotated[str | None, Field(description="The agent it was said to.")] = None,
        session_id: Annotated[
            str | None, Field(description="The conversation or session it came from.")
        ] = None,
        tags: Annotated[list[str] | None, Field(description="Labels to filter by later.")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Free JSON kept with the memory.")
        ] = None,
    ) -> list[dict[str, Any]]:
        with _as_tool_errors():
            recs = resolve(ctx).add(
                text,
                [m.model_dump(exclude_none=True) for m in messages] if messages else None,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                tags=tags,
                metadata=metadata,
            )
        return [_compact(r) for r in recs]

    @server.tool(
        name="recall",
        description="Find a user's memories relevant to a query, best first (meaning, "
        "keywords, names, dates and 'last week'-style times all count). Use a short "
        "question or topic as the query.",
    )
    def recall(
        query: Annotated[str, Field(description="What to look for, e.g. 'food allergies'.")],
        user_id: UserId,
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=100, description="How many memories to return.")] = 5,
        filters: Annotated[
            dict[str, Any] | None,
            Field(
                description="Narrow before ranking: agent_id, session_id, tags (all must "
                "match), kinds, since/until (ISO times of the event), metadata (equality)."
            ),
        ] = None,
        recipe: Annotated[
            str | None,
            Field(
                description="Retrieval recipe: 'fast' (meaning only), 'balanced' (default), "
                "'deep' (more channels and candidates), or a compact recipe string."
            ),
        ] = None,
    ) -> list[dict[str, Any]]:
        with _as_tool_errors():
            hits = resolve(ctx).recall(query, user_id=user_id, k=k, filters=filters, recipe=recipe)
        return [_compact(h.record, h.score) for h in hits]

    @server.tool(name="get_memory", description="One memory by id, with its user and tags.")
    def get_memory(id: MemoryId, ctx: Context) -> dict[str, Any]:
        with _as_tool_errors():
            rec = resolve(ctx).get(id)
        return {**_compact(rec), "user_id": rec.user_id, "tags": rec.tags, "kind": rec.kind}

    @server.tool(
        name="update_memory",
        description="Correct a memory's text (or replace its tags or metadata); the old "
        "version stays in its history.",
    )
    def update_memory(
        id: MemoryId,
        ctx: Context,
        text: Annotated[str | None, Field(description="The corrected statement.")] = None,
        tags: Annotated[list[str] | None, Field(description="New labels (replace).")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="New metadata (replaces it whole).")
        ] = None,
    ) -> dict[str, Any]:
        if text is None and tags is None and metadata is None:
            raise ToolError("give text, tags or metadata to change")
        with _as_tool_errors():
            rec = resolve(ctx).update(id, text=text, tags=tags, metadata=metadata)
        return _compact(rec)

    @server.tool(
        name="delete_memory",
        description="Forget a memory (when the user asks to, or it is wrong). It stops "
        "being recalled; its history is kept.",
    )
    def delete_memory(id: MemoryId, ctx: Context) -> dict[str, Any]:
        with _as_tool_errors():
            resolve(ctx).delete(id)
        return {"id": id, "deleted": True}

    @server.tool(
        name="memory_history",
        description="Every version of a memory, oldest first: what it said and how it "
        "changed (create, update, supersede, delete...).",
    )
    def memory_history(id: MemoryId, ctx: Context) -> list[dict[str, Any]]:
        with _as_tool_errors():
            versions = resolve(ctx).history(id)
        return [
            {
                "version": v.version,
                "change": v.change,
                "content": v.content,
                "time": v.changed_at.isoformat(timespec="seconds"),
            }
            for v in versions
        ]

    @server.tool(
        name="list_cubes",
        description="The memory cubes this caller can read (one per user by default, "
        "'user:<user_id>'), with their record counts.",
    )
    def list_cubes(ctx: Context) -> list[dict[str, Any]]:
        with _as_tool_errors():
            cubes = resolve(ctx).list_cubes()
        return [{"name": c.name, "records": c.records, "access": c.access} for c in cubes]

    return server
