"""A mem0-compatible surface under `/mem0`: mem0's own `MemoryClient(host=".../mem0")` works
against memsvc unchanged, so moving off mem0 is a change of URL and key.

Mapping. `Authorization: Token <key>` is a memsvc API key (its tenant is the mem0 "org").
A memory's scope is the first of user_id, agent_id, run_id, app_id it is added with: with a
user_id it lands in that user's default cube (`user:<id>`, the same cube the native API
uses), otherwise under the memsvc user `agent:<id>` (or `run:`, `app:`), whose default cube
is its own. Searches and listings pick
the cube the same way and narrow within it by the other ids (run_id is memsvc's session_id,
app_id a metadata key). Messages are stored as said, one memory each (memsvc extracts
nothing with an LLM), so mem0's `infer` is accepted and has no effect.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from memsvc import Memory, __version__
from memsvc.api.deps import AppSettings, RootMemory, api_key, authorize
from memsvc.errors import AuthError, InvalidInput, RecordNotFound
from memsvc.models import MemoryRecord, RecordVersion

__all__ = ["router"]

router = APIRouter(prefix="/mem0", tags=["mem0 compatibility"])

_IDS = ("user_id", "agent_id", "run_id", "app_id")
_SCOPE_PREFIX = {"agent_id": "agent", "run_id": "run", "app_id": "app"}
_EVENTS = {"create": "ADD", "update": "UPDATE", "delete": "DELETE"}


async def _tenant_memory(request: Request, memory: RootMemory, settings: AppSettings) -> Memory:
    """mem0 sends `Authorization: Token <key>`; `Bearer` is accepted too."""
    if not settings.auth:
        return memory
    token = api_key(request.headers.get("authorization"), ("token", "bearer"))
    if token is None:
        raise AuthError("missing API key: send 'Authorization: Token <key>'")
    return memory.for_tenant(await authorize(memory, token))


Mem0Memory = Annotated[Memory, Depends(_tenant_memory)]


class _Body(BaseModel):
    # mem0's client sends options memsvc has no use for (output_format, version, ...).
    model_config = ConfigDict(extra="allow")


class Mem0Message(BaseModel):
    role: str = "user"
    content: str
    name: str | None = None


class AddBody(_Body):
    messages: list[Mem0Message] | str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict[str, Any] | None = None
    filters: dict[str, Any] | None = Field(default=None, description="Ids may come here too.")
    infer: bool | None = Field(default=None, description="Accepted; memsvc stores as said.")
    timestamp: int | float | None = Field(default=None, description="Unix time of the event.")


class SearchBody(_Body):
    query: str
    filters: dict[str, Any] | None = None
    top_k: int = 10
    threshold: float | None = None


class ListBody(_Body):
    filters: dict[str, Any] | None = None


class UpdateBody(_Body):
    text: str | None = None
    metadata: dict[str, Any] | None = None


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _synthetic_user(ids: dict[str, str]) -> str:
    """The memsvc user_id of a scope: the user's own, else `agent:<id>` (or run:, app:),
    whose default cube (`user:agent:<id>`) memsvc makes on the first add like any user's."""
    if ids.get("user_id"):
        return ids["user_id"]
    for key in ("agent_id", "run_id", "app_id"):
        if ids.get(key):
            return f"{_SCOPE_PREFIX[key]}:{ids[key]}"
    raise InvalidInput(
        "at least one of user_id, agent_id, run_id or app_id is required",
        details={"field": "filters"},
    )


def _mem0(rec: MemoryRecord, score: float | None = None) -> dict[str, Any]:
    meta = dict(rec.metadata)
    app_id = meta.pop("app_id", None)
    synthetic = rec.user_id is not None and rec.user_id.split(":", 1)[0] in ("agent", "run", "app")
    out: dict[str, Any] = {
        "id": rec.id,
        "memory": rec.content,
        "user_id": None if synthetic else rec.user_id,
        "agent_id": rec.agent_id,
        "run_id": rec.session_id,
        "app_id": app_id,
        "metadata": meta or None,
        "categories": list(rec.tags),
        "created_at": _iso(rec.created_at),
        "updated_at": _iso(rec.updated_at),
        "expiration_date": None,
        "immutable": False,
    }
    if score is not None:
        out["score"] = score
    return out


def _flatten(filters: dict[str, Any] | None) -> dict[str, Any]:
    """mem0 filters: plain `{"user_id": ...}` or `{"AND": [{...}, ...]}` of equalities."""
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if key == "AND" and isinstance(value, list):
            for part in value:
                if not isinstance(part, dict):
                    raise InvalidInput("AND takes a list of objects", details={"field": "filters"})
                out.update(_flatten(part))
        elif key in _IDS or key == "metadata":
            if key == "metadata" and not isinstance(value, dict):
                raise InvalidInput(
                    "filter metadata must be an object", details={"field": "filters.metadata"}
                )
            if key in _IDS and (not isinstance(value, str) or not value):
                raise InvalidInput(
                    f"filter {key} must be a string (operators are not supported)",
                    details={"field": f"filters.{key}"},
                )
            out[key] = value
        else:
            raise InvalidInput(
                f"unsupported filter {key!r}: use user_id, agent_id, run_id, app_id, metadata "
                "or AND of them",
                details={"field": f"filters.{key}"},
            )
    return out


def _scope(filters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(memsvc user_id, memsvc filters) for a search or listing."""
    user = _synthetic_user(filters)
    meta = dict(filters.get("metadata") or {})
    if filters.get("app_id") and (filters.get("user_id") or filters.get("agent_id")):
        meta["app_id"] = filters["app_id"]
    native: dict[str, Any] = {"metadata": meta}
    if filters.get("agent_id") and (filters.get("user_id")):
        native["agent_id"] = filters["agent_id"]
    if filters.get("run_id") and (filters.get("user_id") or filters.get("agent_id")):
        native["session_id"] = filters["run_id"]
    return user, native


def _all_records(memory: Memory, user: str, native: dict[str, Any]) -> list[MemoryRecord]:
    out: list[MemoryRecord] = []
    cursor = None
    while True:
        page = memory.list(user_id=user, filters=native, limit=100, cursor=cursor)
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def _live(memory: Memory, memory_id: str) -> MemoryRecord:
    rec = memory.get(memory_id)
    if rec.status == "deleted":  # mem0 forgets a deleted memory; memsvc keeps its history
        raise RecordNotFound(f"memory {memory_id!r} not found", details={"id": memory_id})
    return rec


@router.get("/v1/ping/")
def mem0_ping(memory: Mem0Memory) -> dict[str, Any]:
    """What mem0's client calls at start: org and project ids (the tenant, "memsvc")."""
    return {
        "status": "ok",
        "org_id": memory.tenant,
        "project_id": "memsvc",
        "user_email": None,
        "server": f"memsvc {__version__}",
    }


@router.post("/v3/memories/add/")
@router.post("/v1/memories/", include_in_schema=False)
def mem0_add(body: AddBody, memory: Mem0Memory) -> dict[str, Any]:
    ids = {k: getattr(body, k) for k in _IDS if getattr(body, k)}
    ids.update({k: v for k, v in _flatten(body.filters).items() if k in _IDS and k not in ids})
    user = _synthetic_user(ids)
    msgs = [Mem0Message(content=body.messages)] if isinstance(body.messages, str) else body.messages
    metadata = dict(body.metadata or {})
    if ids.get("app_id"):
        metadata["app_id"] = ids["app_id"]
    recs = memory.add(
        messages=[m.model_dump(exclude_none=True) for m in msgs],
        user_id=user,
        agent_id=ids.get("agent_id"),
        session_id=ids.get("run_id"),
        metadata=metadata or None,
        timestamp=body.timestamp,
    )
    return {
        "results": [{**_mem0(r), "event": "ADD"} for r in recs],
        "status": "SUCCEEDED",
        "event_id": str(uuid.uuid4()),
        "message": f"{len(recs)} memories added",
    }


@router.post("/v3/memories/search/")
@router.post("/v2/memories/search/", include_in_schema=False)
def mem0_search(body: SearchBody, memory: Mem0Memory) -> dict[str, Any]:
    user, native = _scope(_flatten(body.filters))
    k = max(1, min(body.top_k, memory.settings.max_k))
    hits = memory.recall(body.query, user_id=user, k=k, filters=native)
    results = [_mem0(h.record, h.score) for h in hits]
    if body.threshold is not None:
        results = [r for r in results if r["score"] >= body.threshold]
    return {"results": results}


@router.post("/v3/memories/")
@router.post("/v2/memories/", include_in_schema=False)
def mem0_get_all(
    body: ListBody, memory: Mem0Memory, page: int = 1, page_size: int = 100
) -> dict[str, Any]:
    if page < 1 or not 1 <= page_size <= 1000:
        raise InvalidInput("page must be >= 1 and page_size 1-1000", details={"field": "page"})
    user, native = _scope(_flatten(body.filters))
    records = _all_records(memory, user, native)
    start = (page - 1) * page_size
    chunk = records[start : start + page_size]
    more = start + page_size < len(records)
    return {
        "count": len(records),
        "next": f"?page={page + 1}&page_size={page_size}" if more else None,
        "previous": f"?page={page - 1}&page_size={page_size}" if page > 1 else None,
        "results": [_mem0(r) for r in chunk],
    }


@router.get("/v1/memories/{memory_id}/")
def mem0_get(memory_id: str, memory: Mem0Memory) -> dict[str, Any]:
    return _mem0(_live(memory, memory_id))


@router.put("/v1/memories/{memory_id}/")
def mem0_update(memory_id: str, body: UpdateBody, memory: Mem0Memory) -> dict[str, Any]:
    rec = _live(memory, memory_id)
    if body.text is None and body.metadata is None:
        raise InvalidInput("give text or metadata to update", details={"field": "text"})
    metadata = None
    if body.metadata is not None:
        metadata = dict(body.metadata)
        if "app_id" in rec.metadata:  # the scope stays
            metadata["app_id"] = rec.metadata["app_id"]
    return _mem0(memory.update(memory_id, text=body.text, metadata=metadata))


@router.delete("/v1/memories/{memory_id}/")
def mem0_delete(memory_id: str, memory: Mem0Memory) -> dict[str, Any]:
    _live(memory, memory_id)
    memory.delete(memory_id)
    return {"message": "Memory deleted successfully!"}


@router.delete("/v1/memories/")
def mem0_delete_all(
    memory: Mem0Memory,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    app_id: str | None = None,
) -> dict[str, Any]:
    given = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id, "app_id": app_id}
    user, native = _scope({k: v for k, v in given.items() if v})
    records = _all_records(memory, user, native)
    for rec in records:
        memory.delete(rec.id)
    return {"message": f"{len(records)} memories deleted successfully!"}


def _history_entry(v: RecordVersion, previous: RecordVersion | None, rec: MemoryRecord) -> dict:
    return {
        "id": f"{v.record_id}-{v.version}",
        "memory_id": v.record_id,
        "input": [],
        "old_memory": previous.content if previous is not None else None,
        "new_memory": v.content,
        "user_id": _mem0(rec)["user_id"],
        "event": _EVENTS.get(v.change, v.change.upper()),
        "metadata": v.metadata or None,
        "created_at": _iso(v.changed_at),
        "updated_at": _iso(v.changed_at),
    }


@router.get("/v1/memories/{memory_id}/history/")
def mem0_history(memory_id: str, memory: Mem0Memory) -> list[dict[str, Any]]:
    rec = memory.get(memory_id)
    versions = memory.history(memory_id)
    return [_history_entry(v, versions[i - 1] if i else None, rec) for i, v in enumerate(versions)]
