"""AsyncMemoryClient end to end against the real app in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from memsvc import (
    AsyncMemoryClient,
    AuthError,
    Conflict,
    CubeNotFound,
    Hit,
    InvalidInput,
    Memory,
    MemoryRecord,
    PayloadTooLarge,
    PermissionDenied,
    RecordNotFound,
)
from memsvc.api.app import create_app


def test_async_client_round_trip(open_memory: Callable[..., Memory], tmp_path: Path) -> None:
    mem = open_memory(max_request_bytes=64 * 1024)
    tokens = {t: mem.keys.create(t)[1] for t in ("acme", "globex")}
    app = create_app(mem)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            AsyncMemoryClient("http://memsvc", tokens["acme"], transport=transport) as acme,
            AsyncMemoryClient("http://memsvc", tokens["globex"], transport=transport) as globex,
        ):
            recs = await acme.add(
                ["Otters hold hands while sleeping.", "The tax form is due."],
                user_id="u",
                tags=["nature"],
            )
            assert all(isinstance(r, MemoryRecord) for r in recs)
            hits = await acme.recall("sleeping animals", user_id="u", k=1)
            assert isinstance(hits[0], Hit) and hits[0].record.id == recs[0].id
            assert (await acme.get(recs[1].id)).content == "The tax form is due."
            assert (await acme.update(recs[1].id, text="The tax form was filed.")).version == 2
            assert len(await acme.history(recs[1].id)) == 2
            page = await acme.list(user_id="u", limit=1)
            assert len(page.items) == 1 and page.next_cursor
            await acme.create_cube("shared-notes")
            with pytest.raises(Conflict):
                await acme.create_cube("shared-notes")
            note = (await acme.add("Standup at 9.", user_id="u", cube="shared-notes"))[0]
            cube = await acme.share_cube("shared-notes", "globex")
            assert (await globex.get(note.id)).content == "Standup at 9."
            with pytest.raises(PermissionDenied):
                await globex.delete(note.id)
            with pytest.raises(RecordNotFound):
                await globex.get(recs[0].id)
            path = tmp_path / "c.memcube"
            assert (await acme.export_cube("shared-notes", path))["records"] == 1
            await acme.delete_cube(cube.id)
            with pytest.raises(CubeNotFound):
                await acme.get_cube("shared-notes")
            assert (await acme.import_cube(path)).records == 1
            with pytest.raises(InvalidInput):
                await acme.recall("x", user_id="u", k=0)
            with pytest.raises(PayloadTooLarge):
                await acme.add(["y" * 30_000, "z" * 30_000, "w" * 30_000], user_id="u")
            await acme.delete(recs[0].id, hard=True)
            with pytest.raises(RecordNotFound):
                await acme.get(recs[0].id)
        async with AsyncMemoryClient("http://memsvc", "msk_bad", transport=transport) as bad:
            with pytest.raises(AuthError):
                await bad.list_cubes()

    asyncio.run(scenario())
