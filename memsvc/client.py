"""`MemoryClient` / `AsyncMemoryClient`: the SDK over HTTP, with `Memory`'s surface.

    from memsvc import MemoryClient

    with MemoryClient("http://127.0.0.1:8000", api_key="msk_...") as mem:
        mem.add("Alice moved to Berlin.", user_id="alice")
        hits = mem.recall("where does alice live", user_id="alice")

Same methods, arguments, return types and exceptions as the embedded `Memory`: a shared
base builds each request and parses each response; the two clients add only the I/O.
Pass `transport=` (any httpx transport, e.g. `httpx.ASGITransport(app)`) to call an app
in-process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from memsvc import errors
from memsvc.errors import InvalidInput, MemsvcError
from memsvc.models import (
    Cube,
    Filters,
    Generation,
    GraphPage,
    Hit,
    MaintenanceRun,
    MemoryRecord,
    Message,
    Neighbor,
    Page,
    RecordVersion,
)
from memsvc.retrieval.recipe import Recipe
from memsvc.validation import check_text, to_utc

__all__ = ["AsyncMemoryClient", "MemoryClient"]

Progress = Callable[[int, int | None], None]
StatusArg = Literal["active", "archived", "deleted", "all"]
_RECORDS = TypeAdapter(list[MemoryRecord])
_HITS = TypeAdapter(list[Hit])
_VERSIONS = TypeAdapter(list[RecordVersion])
_NEIGHBORS = TypeAdapter(list[Neighbor])
_CUBES = TypeAdapter(list[Cube])
_ERRORS: dict[str, type[MemsvcError]] = {
    cls.code: cls
    for cls in (
        errors.NotFound,
        errors.CubeNotFound,
        errors.RecordNotFound,
        errors.InvalidInput,
        errors.PayloadTooLarge,
        errors.Conflict,
        errors.AuthError,
        errors.PermissionDenied,
        errors.StorageError,
        errors.ModelUnavailable,
        errors.RateLimited,
    )
}
_BY_STATUS: dict[int, type[MemsvcError]] = {
    400: errors.InvalidInput,
    401: errors.AuthError,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    422: errors.InvalidInput,
    429: errors.RateLimited,
    503: errors.StorageError,
}


@dataclass
class _Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    parse: Callable[[httpx.Response], Any] = lambda r: None
    slow: bool = False  # minutes of work (training): no client-side timeout


def _csv(values: Sequence[str] | str | None) -> str | None:
    """A list query parameter as the API takes it: comma-separated."""
    return values if values is None or isinstance(values, str) else ",".join(values)


def _iso(value: Any, name: str) -> str | None:
    when = to_utc(value, field=name)
    return when.isoformat() if when is not None else None


def _text(value: Any, name: str) -> Any:
    """bytes must be UTF-8 (as in `Memory`); JSON carries only text."""
    if isinstance(value, bytes | bytearray):
        return check_text(value, field=name, max_bytes=1 << 62)
    return value


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def raise_for_error(resp: httpx.Response) -> None:
    """Turn an error response into the same exception `Memory` raises."""
    if resp.status_code < 400:
        return
    try:
        err = resp.json()["error"]
        code, message, details = err["code"], err["message"], err.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", resp.text or resp.reason_phrase, {}
    cls = _ERRORS.get(code) or _BY_STATUS.get(resp.status_code, MemsvcError)
    raise cls(message, details=details)


class _BaseClient:
    """Request building and response parsing shared by the sync and async clients."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"User-Agent": "memsvc-client"}
        api_key = api_key or os.environ.get("MEMSVC_API_KEY")
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    # Each builder mirrors one `Memory` method's signature and returns a _Call.

    def _add(self, text, messages, **kw) -> _Call:  # type: ignore[no-untyped-def]
        if isinstance(text, bytes | bytearray):
            text = _text(text, "text")
        elif isinstance(text, list | tuple):
            text = [_text(t, f"text[{i}]") for i, t in enumerate(text)]
        if messages is not None and isinstance(messages, Sequence):
            messages = [
                m.model_dump(mode="json") if isinstance(m, Message) else m for m in messages
            ]
        body = {"text": text, "messages": messages, **kw}
        body["timestamp"] = _iso(kw.get("timestamp"), "timestamp")
        if kw.get("tags") is not None and not isinstance(kw["tags"], str):
            body["tags"] = list(kw["tags"])
        return _Call("POST", "/v1/memories", body=_drop_none(body), parse=self._records)

    def _recall(self, query, *, user_id, k, filters, at, cube, recipe=None) -> _Call:  # type: ignore[no-untyped-def]
        if isinstance(filters, Filters):
            filters = filters.model_dump(mode="json", exclude_defaults=True)
        if isinstance(recipe, Recipe):
            recipe = recipe.to_dict()
        body = {
            "query": _text(query, "query"),
            "user_id": user_id,
            "k": k,
            "filters": filters,
            "at": _iso(at, "at"),
            "cube": cube,
            "recipe": recipe,
        }
        return _Call(
            "POST",
            "/v1/memories/search",
            body=_drop_none(body) | {"k": k},
            parse=lambda r: _HITS.validate_python(r.json()),
        )

    def _update(self, id: str, **kw: Any) -> _Call:
        for name in ("event_time", "valid_from", "valid_to"):
            kw[name] = _iso(kw.get(name), name)
        if kw.get("text") is not None:
            kw["text"] = _text(kw["text"], "text")
        if kw.get("tags") is not None and not isinstance(kw["tags"], str):
            kw["tags"] = list(kw["tags"])
        return _Call(
            "PATCH",
            f"/v1/memories/{_seg(id)}",
            body=_drop_none(kw),
            parse=lambda r: MemoryRecord.model_validate(r.json()),
        )

    def _list(self, *, user_id, cube, filters, status, limit, cursor) -> _Call:  # type: ignore[no-untyped-def]
        params: dict[str, Any] = {
            "user_id": user_id,
            "cube": cube,
            "status": status,
            "limit": limit,
            "cursor": cursor,
        }
        if filters is not None:
            try:
                f = filters if isinstance(filters, Filters) else Filters.model_validate(filters)
            except ValueError as exc:
                raise InvalidInput(f"bad filters: {exc}", details={"field": "filters"}) from exc
            params |= {
                "agent_id": f.agent_id,
                "session_id": f.session_id,
                "kinds": f.kinds or None,
                "tags": f.tags or None,
                "since": _iso(f.since, "since"),
                "until": _iso(f.until, "until"),
                "metadata": json.dumps(f.metadata) if f.metadata else None,
                "tiers": list(f.tiers) or None,
            }
            if f.user_id is not None:
                raise InvalidInput(
                    "list filters by user_id are not supported over HTTP; pass user_id= instead",
                    details={"field": "filters"},
                )
        return _Call(
            "GET",
            "/v1/memories",
            params=_drop_none(params),
            parse=lambda r: Page.model_validate(r.json()),
        )

    def _unreachable(self, exc: httpx.TransportError) -> errors.StorageError:
        return errors.StorageError(f"cannot reach memsvc at {self.base_url}: {exc}")

    def _get(self, id: str) -> _Call:
        return _Call("GET", f"/v1/memories/{_seg(id)}", parse=self._record)

    def _delete(self, id: str, hard: bool) -> _Call:
        return _Call("DELETE", f"/v1/memories/{_seg(id)}", params={"hard": "true"} if hard else {})

    def _graph(self, cube: str, *, types: Any, limit: int, cursor: str | None) -> _Call:
        params = _drop_none({"types": _csv(types), "limit": limit, "cursor": cursor})
        return _Call(
            "GET",
            f"/v1/cubes/{_seg(cube)}/graph",
            params=params,
            parse=lambda r: GraphPage.model_validate(r.json()),
        )

    def _neighbors(self, id: str, *, types: Any, depth: int) -> _Call:
        params = _drop_none({"types": _csv(types), "depth": depth})
        return _Call(
            "GET",
            f"/v1/memories/{_seg(id)}/neighbors",
            params=params,
            parse=lambda r: _NEIGHBORS.validate_python(r.json()),
        )

    def _generate(self, prompt: str, **kw: Any) -> _Call:
        filters, recipe = kw.get("filters"), kw.get("recipe")
        if isinstance(filters, Filters):
            kw["filters"] = filters.model_dump(mode="json", exclude_defaults=True)
        if isinstance(recipe, Recipe):
            kw["recipe"] = recipe.to_dict()
        body = _drop_none({"prompt": _text(prompt, "prompt"), **kw}) | {"k": kw["k"]}
        return _Call(
            "POST",
            "/v1/generate",
            body=body,
            parse=lambda r: Generation.model_validate(r.json()),
            slow=True,
        )

    def _promote(self, id: str | Sequence[str], tier: str) -> _Call:
        ids = [id] if isinstance(id, str) else list(id)
        return _Call(
            "POST",
            "/v1/memories/promote",
            body={"record_ids": ids, "tier": tier},
            parse=self._record,
            slow=True,
        )

    def _demote(self, id: str) -> _Call:
        return _Call(
            "POST", f"/v1/memories/{_seg(id)}/demote", parse=lambda r: list(r.json()["removed"])
        )

    def _consolidate(self, cube: str | None, user_id: str | None, **kw: Any) -> _Call:
        if cube is None:
            if user_id is None:
                raise InvalidInput("give user_id or cube", details={"field": "user_id"})
            cube = f"user:{user_id}"
        if kw.get("record_ids") is not None and not isinstance(kw["record_ids"], str):
            kw["record_ids"] = list(kw["record_ids"])
        return _Call(
            "POST",
            f"/v1/cubes/{_seg(cube)}/consolidate",
            body=_drop_none(kw),
            parse=self._record,
            slow=True,
        )

    def _restore(self, id: str) -> _Call:
        return _Call("POST", f"/v1/memories/{_seg(id)}/restore", parse=self._record)

    def _lineage(self, id: str) -> _Call:
        return _Call("GET", f"/v1/memories/{_seg(id)}/lineage", parse=self._records)

    def _maintain(self, cube: str) -> _Call:
        return _Call(
            "POST",
            f"/v1/cubes/{_seg(cube)}/maintain",
            parse=lambda r: MaintenanceRun.model_validate(r.json()),
        )

    def _last_run(self, cube: str) -> _Call:
        return _Call(
            "GET",
            f"/v1/cubes/{_seg(cube)}/maintenance",
            parse=lambda r: None if r.json() is None else MaintenanceRun.model_validate(r.json()),
        )

    def _history(self, id: str) -> _Call:
        return _Call(
            "GET",
            f"/v1/memories/{_seg(id)}/history",
            parse=lambda r: _VERSIONS.validate_python(r.json()),
        )

    def _create_cube(self, name: str, **kw: Any) -> _Call:
        return _Call("POST", "/v1/cubes", body=_drop_none({"name": name, **kw}), parse=self._cube)

    def _get_cube(self, cube: str) -> _Call:
        return _Call("GET", f"/v1/cubes/{_seg(cube)}", parse=self._cube)

    def _list_cubes(self) -> _Call:
        return _Call("GET", "/v1/cubes", parse=lambda r: _CUBES.validate_python(r.json()))

    def _delete_cube(self, cube: str) -> _Call:
        return _Call("DELETE", f"/v1/cubes/{_seg(cube)}")

    def _share_cube(self, cube: str, tenant: str) -> _Call:
        return _Call(
            "POST", f"/v1/cubes/{_seg(cube)}/share", body={"tenant": tenant}, parse=self._cube
        )

    @staticmethod
    def _record(r: httpx.Response) -> MemoryRecord:
        return MemoryRecord.model_validate(r.json())

    @staticmethod
    def _records(r: httpx.Response) -> list[MemoryRecord]:
        return _RECORDS.validate_python(r.json())

    @staticmethod
    def _cube(r: httpx.Response) -> Cube:
        return Cube.model_validate(r.json())

    @staticmethod
    def _encode(call: _Call) -> dict[str, Any]:
        kw: dict[str, Any] = {"params": call.params}
        if call.slow:
            kw["timeout"] = None
        if call.body is not None:
            # ensure_ascii: lone surrogates travel as escapes and get the server's clear 422
            # instead of failing to encode here.
            kw["content"] = json.dumps(
                call.body, ensure_ascii=True, allow_nan=False, default=_json_default
            ).encode()
            kw["headers"] = {"Content-Type": "application/json"}
        return kw


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value, "timestamp")
    raise InvalidInput(f"cannot send a {type(value).__name__} as JSON")


def _seg(value: str) -> str:
    if not isinstance(value, str) or not value or "/" in value:
        raise InvalidInput("ids and cube names cannot be empty or contain '/'")
    # percent-encode what a URL cannot carry raw (control characters): the server answers
    # for it (an id with a NUL is simply not found), as `Memory` does
    return quote(value, safe=":@._-~!$&'()*+,;=")


def _counts(resp: httpx.Response) -> dict[str, int]:
    return {k: int(resp.headers.get(f"x-memsvc-{k}", 0)) for k in ("records", "entities", "edges")}


class MemoryClient(_BaseClient):
    """`Memory` over HTTP (sync). Parameters: base_url, api_key, timeout, transport."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    def _send(self, call: _Call) -> Any:
        try:
            resp = self._http.request(call.method, call.path, **self._encode(call))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for_error(resp)
        return call.parse(resp)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        text: str | Sequence[str] | None = None,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        cube: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: datetime | str | float | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        pinned: bool = False,
    ) -> list[MemoryRecord]:
        return self._send(
            self._add(
                text,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                cube=cube,
                metadata=metadata,
                timestamp=timestamp,
                kind=kind,
                tags=tags,
                importance=importance,
                pinned=pinned,
            )
        )

    def recall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> list[Hit]:
        return self._send(
            self._recall(
                query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
            )
        )

    def get(self, id: str) -> MemoryRecord:
        return self._send(self._get(id))

    def update(
        self,
        id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        kind: str | None = None,
        event_time: datetime | str | float | None = None,
        valid_from: datetime | str | float | None = None,
        valid_to: datetime | str | float | None = None,
        pinned: bool | None = None,
    ) -> MemoryRecord:
        return self._send(
            self._update(
                id,
                text=text,
                metadata=metadata,
                tags=tags,
                importance=importance,
                kind=kind,
                event_time=event_time,
                valid_from=valid_from,
                valid_to=valid_to,
                pinned=pinned,
            )
        )

    def delete(self, id: str, *, hard: bool = False) -> None:
        self._send(self._delete(id, hard))

    def history(self, id: str) -> list[RecordVersion]:
        return self._send(self._history(id))

    def lineage(self, id: str) -> list[MemoryRecord]:
        return self._send(self._lineage(id))

    def generate(
        self,
        prompt: str,
        *,
        user_id: str,
        cube: str | None = None,
        k: int = 5,
        use_cache: bool = True,
        adapter: str | None = None,
        max_tokens: int = 64,
        filters: Filters | dict[str, Any] | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> Generation:
        return self._send(
            self._generate(
                prompt,
                user_id=user_id,
                cube=cube,
                k=k,
                use_cache=use_cache,
                adapter=adapter,
                max_tokens=max_tokens,
                filters=filters,
                recipe=recipe,
            )
        )

    def promote(
        self, id: str | Sequence[str], *, tier: Literal["activation", "parametric"] = "activation"
    ) -> MemoryRecord:
        return self._send(self._promote(id, tier))

    def demote(self, id: str) -> list[str]:
        return self._send(self._demote(id))

    def consolidate(
        self,
        cube: str | None = None,
        *,
        user_id: str | None = None,
        record_ids: Sequence[str] | None = None,
        steps: int | None = None,
        rank: int | None = None,
        learning_rate: float | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> MemoryRecord:
        """Training runs on the server; `progress` is called once, when it is done."""
        rec = self._send(
            self._consolidate(
                cube,
                user_id,
                record_ids=record_ids,
                steps=steps,
                rank=rank,
                learning_rate=learning_rate,
            )
        )
        if progress is not None:
            curve = rec.metadata.get("loss_curve") or [0.0]
            progress(len(curve), len(curve), float(curve[-1]))
        return rec

    def restore(self, id: str) -> MemoryRecord:
        return self._send(self._restore(id))

    def maintain(self, cube: str | None = None) -> list[MaintenanceRun]:
        """Maintenance now on one cube, or on each cube this key's tenant owns (addressed by
        id: a default cube's name holds its user id, which may contain a '/')."""
        names = [cube] if cube else [c.id for c in self.list_cubes() if c.access == "owner"]
        return [self._send(self._maintain(n)) for n in names]

    def maintenance_runs(self, cube: str | None = None) -> list[MaintenanceRun]:
        names = [cube] if cube else [c.id for c in self.list_cubes() if c.access == "owner"]
        runs = [self._send(self._last_run(n)) for n in names]
        return [r for r in runs if r is not None]

    def graph(
        self,
        cube: str,
        *,
        types: Sequence[str] | str | None = None,
        limit: int = 200,
        cursor: str | None = None,
    ) -> GraphPage:
        return self._send(self._graph(cube, types=types, limit=limit, cursor=cursor))

    def neighbors(
        self, id: str, *, types: Sequence[str] | str | None = None, depth: int = 1
    ) -> list[Neighbor]:
        return self._send(self._neighbors(id, types=types, depth=depth))

    def list(
        self,
        *,
        user_id: str | None = None,
        cube: str | None = None,
        filters: Filters | dict[str, Any] | None = None,
        status: StatusArg = "active",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        return self._send(
            self._list(
                user_id=user_id,
                cube=cube,
                filters=filters,
                status=status,
                limit=limit,
                cursor=cursor,
            )
        )

    def create_cube(
        self,
        name: str,
        *,
        description: str | None = None,
        owner_user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        search_mode: str | None = None,
    ) -> Cube:
        return self._send(
            self._create_cube(
                name,
                description=description,
                owner_user_id=owner_user_id,
                metadata=metadata,
                search_mode=search_mode,
            )
        )

    def get_cube(self, cube: str) -> Cube:
        return self._send(self._get_cube(cube))

    def list_cubes(self) -> list[Cube]:
        return self._send(self._list_cubes())

    def delete_cube(self, cube: str) -> None:
        self._send(self._delete_cube(cube))

    def share_cube(self, cube: str, tenant: str) -> Cube:
        return self._send(self._share_cube(cube, tenant))

    def export_cube(
        self, cube: str, path: str | Path, *, progress: Progress | None = None
    ) -> dict[str, int]:
        """Download the cube file to `path` (atomically); `progress` gets bytes so far."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with self._http.stream("POST", f"/v1/cubes/{_seg(cube)}/export") as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise_for_error(resp)
                total = int(resp.headers.get("content-length", 0)) or None
                with open(tmp, "wb") as fh:
                    for chunk in resp.iter_bytes():
                        fh.write(chunk)
                        if progress:
                            progress(resp.num_bytes_downloaded, total)
                counts = _counts(resp)
            os.replace(tmp, path)
            return counts
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def import_cube(
        self, path: str | Path, *, cube: str | None = None, progress: Progress | None = None
    ) -> Cube:
        """Upload a cube file; `progress` gets bytes sent so far."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no cube file at {path}")
        total = path.stat().st_size

        def chunks():  # type: ignore[no-untyped-def]
            sent = 0
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    sent += len(chunk)
                    if progress:
                        progress(sent, total)
                    yield chunk

        params = _drop_none({"cube": cube})
        try:
            resp = self._http.post(
                "/v1/cubes/import",
                params=params,
                content=chunks(),
                headers={"Content-Type": "application/gzip", "Content-Length": str(total)},
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for_error(resp)
        return self._cube(resp)


class AsyncMemoryClient(_BaseClient):
    """`Memory` over HTTP (asyncio): the same methods as `MemoryClient`, awaited."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def _send(self, call: _Call) -> Any:
        try:
            resp = await self._http.request(call.method, call.path, **self._encode(call))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for_error(resp)
        return call.parse(resp)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def add(
        self,
        text: str | Sequence[str] | None = None,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        cube: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: datetime | str | float | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        pinned: bool = False,
    ) -> list[MemoryRecord]:
        return await self._send(
            self._add(
                text,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                session_id=session_id,
                cube=cube,
                metadata=metadata,
                timestamp=timestamp,
                kind=kind,
                tags=tags,
                importance=importance,
                pinned=pinned,
            )
        )

    async def recall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> list[Hit]:
        return await self._send(
            self._recall(
                query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
            )
        )

    async def get(self, id: str) -> MemoryRecord:
        return await self._send(self._get(id))

    async def update(
        self,
        id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        kind: str | None = None,
        event_time: datetime | str | float | None = None,
        valid_from: datetime | str | float | None = None,
        valid_to: datetime | str | float | None = None,
        pinned: bool | None = None,
    ) -> MemoryRecord:
        return await self._send(
            self._update(
                id,
                text=text,
                metadata=metadata,
                tags=tags,
                importance=importance,
                kind=kind,
                event_time=event_time,
                valid_from=valid_from,
                valid_to=valid_to,
                pinned=pinned,
            )
        )

    async def delete(self, id: str, *, hard: bool = False) -> None:
        await self._send(self._delete(id, hard))

    async def history(self, id: str) -> list[RecordVersion]:
        return await self._send(self._history(id))

    async def lineage(self, id: str) -> list[MemoryRecord]:
        return await self._send(self._lineage(id))

    async def generate(
        self,
        prompt: str,
        *,
        user_id: str,
        cube: str | None = None,
        k: int = 5,
        use_cache: bool = True,
        adapter: str | None = None,
        max_tokens: int = 64,
        filters: Filters | dict[str, Any] | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> Generation:
        return await self._send(
            self._generate(
                prompt,
                user_id=user_id,
                cube=cube,
                k=k,
                use_cache=use_cache,
                adapter=adapter,
                max_tokens=max_tokens,
                filters=filters,
                recipe=recipe,
            )
        )

    async def promote(
        self, id: str | Sequence[str], *, tier: Literal["activation", "parametric"] = "activation"
    ) -> MemoryRecord:
        return await self._send(self._promote(id, tier))

    async def demote(self, id: str) -> list[str]:
        return await self._send(self._demote(id))

    async def consolidate(
        self,
        cube: str | None = None,
        *,
        user_id: str | None = None,
        record_ids: Sequence[str] | None = None,
        steps: int | None = None,
        rank: int | None = None,
        learning_rate: float | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> MemoryRecord:
        """Training runs on the server; `progress` is called once, when it is done."""
        rec = await self._send(
            self._consolidate(
                cube,
                user_id,
                record_ids=record_ids,
                steps=steps,
                rank=rank,
                learning_rate=learning_rate,
            )
        )
        if progress is not None:
            curve = rec.metadata.get("loss_curve") or [0.0]
            progress(len(curve), len(curve), float(curve[-1]))
        return rec

    async def restore(self, id: str) -> MemoryRecord:
        return await self._send(self._restore(id))

    async def maintain(self, cube: str | None = None) -> list[MaintenanceRun]:
        names = [cube] if cube else [c.id for c in await self.list_cubes() if c.access == "owner"]
        return [await self._send(self._maintain(n)) for n in names]

    async def maintenance_runs(self, cube: str | None = None) -> list[MaintenanceRun]:
        names = [cube] if cube else [c.id for c in await self.list_cubes() if c.access == "owner"]
        runs = [await self._send(self._last_run(n)) for n in names]
        return [r for r in runs if r is not None]

    async def graph(
        self,
        cube: str,
        *,
        types: Sequence[str] | str | None = None,
        limit: int = 200,
        cursor: str | None = None,
    ) -> GraphPage:
        return await self._send(self._graph(cube, types=types, limit=limit, cursor=cursor))

    async def neighbors(
        self, id: str, *, types: Sequence[str] | str | None = None, depth: int = 1
    ) -> list[Neighbor]:
        return await self._send(self._neighbors(id, types=types, depth=depth))

    async def list(
        self,
        *,
        user_id: str | None = None,
        cube: str | None = None,
        filters: Filters | dict[str, Any] | None = None,
        status: StatusArg = "active",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        return await self._send(
            self._list(
                user_id=user_id,
                cube=cube,
                filters=filters,
                status=status,
                limit=limit,
                cursor=cursor,
            )
        )

    async def create_cube(
        self,
        name: str,
        *,
        description: str | None = None,
        owner_user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        search_mode: str | None = None,
    ) -> Cube:
        return await self._send(
            self._create_cube(
                name,
                description=description,
                owner_user_id=owner_user_id,
                metadata=metadata,
                search_mode=search_mode,
            )
        )

    async def get_cube(self, cube: str) -> Cube:
        return await self._send(self._get_cube(cube))

    async def list_cubes(self) -> list[Cube]:
        return await self._send(self._list_cubes())

    async def delete_cube(self, cube: str) -> None:
        await self._send(self._delete_cube(cube))

    async def share_cube(self, cube: str, tenant: str) -> Cube:
        return await self._send(self._share_cube(cube, tenant))

    async def export_cube(
        self, cube: str, path: str | Path, *, progress: Progress | None = None
    ) -> dict[str, int]:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            async with self._http.stream("POST", f"/v1/cubes/{_seg(cube)}/export") as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise_for_error(resp)
                total = int(resp.headers.get("content-length", 0)) or None
                with open(tmp, "wb") as fh:
                    async for chunk in resp.aiter_bytes():
                        fh.write(chunk)
                        if progress:
                            progress(resp.num_bytes_downloaded, total)
                counts = _counts(resp)
            os.replace(tmp, path)
            return counts
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    async def import_cube(
        self, path: str | Path, *, cube: str | None = None, progress: Progress | None = None
    ) -> Cube:
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no cube file at {path}")
        data = path.read_bytes()
        if progress:
            progress(len(data), len(data))
        try:
            resp = await self._http.post(
                "/v1/cubes/import",
                params=_drop_none({"cube": cube}),
                content=data,
                headers={"Content-Type": "application/gzip"},
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for_error(resp)
        return self._cube(resp)
