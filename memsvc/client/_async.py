"""`AsyncMemoryClient`: `Memory` over HTTP for asyncio (httpx.AsyncClient), the same
methods as `MemoryClient`, awaited; `aclose()` instead of `close()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from memsvc.client._base import (
    Progress,
    StatusArg,
    _BaseClient,
    _Call,
    _counts,
    _cube_file,
    _drop_none,
    _owned,
    _report_training,
    _routed,
    _seg,
    _tmp_path,
    raise_for_error,
)
from memsvc.errors import AuthError
from memsvc.models import (
    Added,
    Cube,
    Filters,
    Generation,
    GraphPage,
    Hit,
    IndexCache,
    MaintenanceRun,
    MemoryRecord,
    Message,
    Neighbor,
    Page,
    RecordVersion,
)
from memsvc.retrieval.recipe import Recipe


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
        idempotency_key: str | None = None,
    ) -> Added:
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
                idempotency_key=idempotency_key,
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
        _report_training(rec, progress)
        return rec

    async def restore(self, id: str) -> MemoryRecord:
        return await self._send(self._restore(id))

    async def maintain(self, cube: str | None = None) -> list[MaintenanceRun]:
        names = [cube] if cube else _owned(await self.list_cubes())
        return [await self._send(self._maintain(n)) for n in names]

    async def maintenance_runs(self, cube: str | None = None) -> list[MaintenanceRun]:
        names = [cube] if cube else _owned(await self.list_cubes())
        runs = [await self._send(self._last_run(n)) for n in names]
        return [r for r in runs if r is not None]

    async def index_cache(self, *, operator_token: str | None = None) -> IndexCache:
        """The index cache of the server worker that answered, from its `/metrics`: bytes held
        against its `MEMSVC_INDEX_MEMORY_BYTES`, cubes loaded, hits, misses, evictions, load
        seconds (figures free of any tenant). With several workers each has its own cache,
        and a call sees one of them. A server with `MEMSVC_OPERATOR_TOKEN` set shows
        `/metrics` to its operator only: pass `operator_token` (sent for this call only, in
        place of the API key), else `AuthError`."""
        try:
            return await self._send(self._index_cache(operator_token))
        except AuthError as exc:
            raise self._operator_needed(exc, operator_token) from exc

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
        refuse_duplicates: bool = False,
    ) -> Cube:
        return await self._send(
            self._create_cube(
                name,
                description=description,
                owner_user_id=owner_user_id,
                metadata=metadata,
                search_mode=search_mode,
                refuse_duplicates=refuse_duplicates,
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

    async def unshare_cube(self, cube: str, tenant: str) -> Cube:
        return await self._send(self._unshare_cube(cube, tenant))

    async def export_cube(
        self, cube: str, path: str | Path, *, progress: Progress | None = None
    ) -> dict[str, int]:
        path = Path(path)
        tmp = _tmp_path(path)
        try:
            async with self._http.stream(
                "POST", f"/v1/cubes/{_seg(cube)}/export", headers=_routed(cube)
            ) as resp:
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
        path, _ = _cube_file(path)
        data = path.read_bytes()
        if progress:
            progress(len(data), len(data))
        try:
            resp = await self._http.post(
                "/v1/cubes/import",
                params=_drop_none({"cube": cube}),
                content=data,
                headers={**_routed(cube), "Content-Type": "application/gzip"},
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for_error(resp)
        return self._cube(resp)
