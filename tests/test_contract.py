"""One contract, two faces: every test runs against the embedded `Memory` and against
`MemoryClient` talking to a real `memsvc serve` process; both must behave identically
(same results, same return types, same exception classes)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memsvc import (
    Conflict,
    Cube,
    CubeNotFound,
    Hit,
    InvalidInput,
    Memory,
    MemoryClient,
    MemoryRecord,
    Page,
    PermissionDenied,
    RecordNotFound,
    RecordVersion,
)
from tests.conftest import Served

SDK = Memory | MemoryClient


@pytest.fixture(params=["embedded", "remote", "embedded-pg", "remote-pg"])
def pair(
    request: pytest.FixtureRequest, open_memory: Callable[..., Memory]
) -> Iterator[tuple[SDK, SDK]]:
    """Two tenants' handles ("acme", "globex") on one service, embedded or over HTTP, on
    SQLite or on PostgreSQL."""
    if request.param.startswith("embedded"):
        url = request.getfixturevalue("pg").new_database() if "pg" in request.param else None
        mem = open_memory(database_url=url) if url else open_memory()
        yield mem.for_tenant("acme"), mem.for_tenant("globex")
    else:
        served: Served = request.getfixturevalue("served_pg" if "pg" in request.param else "served")
        a = MemoryClient(served.url, served.keys["acme"])
        b = MemoryClient(served.url, served.keys["globex"])
        yield a, b
        a.close()
        b.close()


@pytest.fixture
def sdk(pair: tuple[SDK, SDK]) -> SDK:
    return pair[0]


def uid() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def test_add_recall_get_update_history(sdk: SDK) -> None:
    user = uid()
    recs = sdk.add(
        ["Alice keeps bees on her roof.", "The car needs new tyres."],
        user_id=user,
        tags=["home"],
        metadata={"src": "t"},
        timestamp="2024-03-01T10:00:00Z",
    )
    assert all(isinstance(r, MemoryRecord) for r in recs)
    assert recs[0].event_time is not None and recs[0].event_time.year == 2024
    hits = sdk.recall("who has a beehive", user_id=user, k=1)
    assert isinstance(hits[0], Hit) and hits[0].record.id == recs[0].id
    assert hits[0].explain["dense"]["rank"] == 1
    assert sdk.get(recs[1].id) == recs[1]
    new = sdk.update(recs[1].id, text="The car got new tyres.", importance=0.9)
    assert new.version == 2 and new.importance == 0.9
    history = sdk.history(recs[1].id)
    assert all(isinstance(v, RecordVersion) for v in history)
    assert [v.content for v in history] == ["The car needs new tyres.", "The car got new tyres."]


def test_messages_filters_and_at(sdk: SDK) -> None:
    user = uid()
    recs = sdk.add(
        messages=[
            {"role": "user", "name": "Ann", "content": "I ran a marathon."},
            {"role": "assistant", "content": "Well done!"},
        ],
        user_id=user,
        session_id="s1",
        timestamp="2023-01-01T00:00:00Z",
    )
    sdk.add("Unrelated note about marathons.", user_id=user, session_id="s2")
    hits = sdk.recall("marathon", user_id=user, filters={"session_id": "s1"}, k=5)
    assert {h.record.id for h in hits} == {r.id for r in recs}
    assert recs[0].source["speaker"] == "Ann"
    assert sdk.recall("marathon", user_id=user, at="2022-06-01T00:00:00Z") == []


def test_delete_soft_and_hard(sdk: SDK) -> None:
    user = uid()
    a, b = sdk.add(["secret alpha", "secret beta"], user_id=user)
    sdk.delete(a.id)
    assert sdk.get(a.id).status == "deleted"
    assert a.id not in {h.record.id for h in sdk.recall("secret", user_id=user)}
    sdk.delete(b.id, hard=True)
    with pytest.raises(RecordNotFound):
        sdk.get(b.id)


def test_list_pages(sdk: SDK) -> None:
    user = uid()
    sdk.add([f"item {i}" for i in range(7)], user_id=user)
    page = sdk.list(user_id=user, limit=4)
    assert isinstance(page, Page) and len(page.items) == 4 and page.next_cursor
    rest = sdk.list(user_id=user, limit=4, cursor=page.next_cursor)
    assert [r.content for r in page.items + rest.items] == [f"item {i}" for i in range(7)]
    assert rest.next_cursor is None
    assert len(sdk.list(user_id=user, filters={"tags": ["none"]}).items) == 0


def test_cubes_share_and_tenant_isolation(pair: tuple[SDK, SDK]) -> None:
    acme, globex = pair
    name = f"team-{uuid.uuid4().hex[:8]}"
    cube = acme.create_cube(name, description="d")
    assert isinstance(cube, Cube) and cube.access == "owner"
    with pytest.raises(Conflict):
        acme.create_cube(name)
    rec = acme.add("Deploys happen on Tuesdays.", user_id="a", cube=name)[0]
    # Not shared yet: globex sees nothing and learns nothing.
    with pytest.raises(CubeNotFound):
        globex.get_cube(cube.id)
    with pytest.raises(RecordNotFound):
        globex.get(rec.id)
    with pytest.raises(RecordNotFound):
        globex.history(rec.id)
    with pytest.raises(RecordNotFound):
        globex.delete(rec.id)
    with pytest.raises(CubeNotFound):
        globex.recall("deploys", user_id="g", cube=cube.id)
    assert acme.share_cube(name, "globex").shared_with == ["globex"]
    # Shared read-only: reads work, writes are refused.
    assert globex.get(rec.id).content == rec.content
    assert globex.recall("when do we deploy", user_id="g", cube=cube.id)[0].record.id == rec.id
    assert cube.id in {c.id for c in globex.list_cubes() if c.access == "read"}
    with pytest.raises(PermissionDenied):
        globex.add("sneaky", user_id="g", cube=cube.id)
    with pytest.raises(PermissionDenied):
        globex.update(rec.id, text="changed")
    with pytest.raises(PermissionDenied):
        globex.delete(rec.id)
    with pytest.raises(PermissionDenied):
        globex.delete_cube(cube.id)
    with pytest.raises(PermissionDenied):
        globex.share_cube(cube.id, "someone")
    acme.delete_cube(name)
    with pytest.raises(CubeNotFound):
        acme.get_cube(name)


def test_cube_search_mode(sdk: SDK) -> None:
    cube = sdk.create_cube(f"exact-{uid()}", search_mode="exact")
    assert cube.search_mode == "exact"
    assert sdk.get_cube(cube.id).search_mode == "exact"
    assert sdk.create_cube(f"default-{uid()}").search_mode is None
    sdk.add("pine needles smell sharp", user_id="u", cube=cube.name)
    assert sdk.recall("forest smell", user_id="u", cube=cube.name)[0].record.cube == cube.name


def test_export_import_round_trip(sdk: SDK, tmp_path: Path) -> None:
    user = uid()
    name = f"exp-{uuid.uuid4().hex[:8]}"
    sdk.create_cube(name)
    recs = sdk.add(["one fact", "two facts"], user_id=user, cube=name)
    sdk.update(recs[0].id, text="one updated fact")
    path = tmp_path / "c.memcube"
    assert sdk.export_cube(name, path) == {"records": 2, "entities": 0, "edges": 0}
    before = sdk.list(cube=name).items
    sdk.delete_cube(name)
    cube = sdk.import_cube(path)
    assert cube.name == name and cube.records == 2
    after = sdk.list(cube=name).items
    assert [r.model_dump(exclude={"cube_id"}) for r in after] == [
        r.model_dump(exclude={"cube_id"}) for r in before
    ]
    assert len(sdk.history(recs[0].id)) == 2
    with pytest.raises(Conflict):
        sdk.import_cube(path)


BAD_CALLS: list[tuple[str, Callable[[SDK], Any], type[Exception]]] = [
    ("empty text", lambda s: s.add("  ", user_id="u"), InvalidInput),
    ("bad utf-8", lambda s: s.add(b"\xff\xfe", user_id="u"), InvalidInput),
    ("lone surrogate", lambda s: s.add("a \udcff b", user_id="u"), InvalidInput),
    # add stores a long text as chunk records; an update may not grow a record past the limit
    (
        "text too big",
        lambda s: s.update(s.add("x", user_id="u")[0].id, text="x" * 40_000),
        InvalidInput,
    ),
    ("no text", lambda s: s.add(user_id="u"), InvalidInput),
    ("k zero", lambda s: s.recall("q", user_id="u", k=0), InvalidInput),
    ("k huge", lambda s: s.recall("q", user_id="u", k=10**6), InvalidInput),
    ("bad filter", lambda s: s.recall("q", user_id="u", filters={"colour": 1}), InvalidInput),
    ("bad at", lambda s: s.recall("q", user_id="u", at="soon"), InvalidInput),
    ("unknown cube", lambda s: s.add("t", user_id="u", cube="nope"), CubeNotFound),
    ("unknown record", lambda s: s.get("no-such-record"), RecordNotFound),
    ("unknown update", lambda s: s.update("no-such-record", text="x"), RecordNotFound),
    ("empty update", lambda s: s.update(s.add("x", user_id="u")[0].id), InvalidInput),
    ("bad cursor", lambda s: s.list(user_id="u", cursor="@@@"), InvalidInput),
    ("bad cube name", lambda s: s.create_cube("../etc"), InvalidInput),
    ("bad search mode", lambda s: s.create_cube(f"c-{uid()}", search_mode="hnsw"), InvalidInput),
    ("missing file", lambda s: s.import_cube("/nonexistent.memcube"), InvalidInput),
]


@pytest.mark.parametrize(("case", "call", "exc"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_the_same_error(sdk: SDK, case: str, call: Callable, exc: type) -> None:
    with pytest.raises(exc) as info:
        call(sdk)
    assert type(info.value) is exc or isinstance(info.value, exc)
    assert str(info.value)


def test_clients_have_memorys_surface() -> None:
    """Same method names and parameters on Memory, MemoryClient and AsyncMemoryClient."""
    import inspect

    from memsvc import AsyncMemoryClient

    shared = [
        "add",
        "recall",
        "get",
        "update",
        "delete",
        "history",
        "lineage",
        "restore",
        "generate",
        "promote",
        "demote",
        "consolidate",
        "maintain",
        "maintenance_runs",
        "list",
        "create_cube",
        "get_cube",
        "list_cubes",
        "delete_cube",
        "share_cube",
        "unshare_cube",
        "export_cube",
        "import_cube",
    ]
    for name in shared:
        want = inspect.signature(getattr(Memory, name)).parameters
        for cls in (MemoryClient, AsyncMemoryClient):
            got = inspect.signature(getattr(cls, name)).parameters
            assert list(got) == list(want), (cls.__name__, name)
            for p in want:
                assert got[p].kind == want[p].kind and got[p].default == want[p].default, (name, p)


def test_remote_client_transport_and_stream_errors(served: Served, tmp_path: Path) -> None:
    from memsvc import StorageError
    from tests.conftest import free_port

    dead = MemoryClient(f"http://127.0.0.1:{free_port()}", "msk_x", timeout=2)
    with dead, pytest.raises(StorageError, match="cannot reach memsvc"):
        dead.list_cubes()
    with MemoryClient(served.url, served.keys["acme"]) as mem:
        with pytest.raises(CubeNotFound):
            mem.export_cube("no-such-cube", tmp_path / "x.memcube")
        assert not list(tmp_path.iterdir())  # no partial file left behind


def test_nul_characters_are_refused_alike_on_every_backend(sdk: SDK) -> None:
    """PostgreSQL cannot store NUL in text or JSON: every backend refuses it the same way."""
    user = uid()
    rec = sdk.add("plain text", user_id=user)[0]
    for kwargs in (
        {"metadata": {"a": "x\x00"}},
        {"tags": ["t\x00"]},
        {"messages": [{"role": "user", "content": "hi", "metadata": {"k": ["\x00"]}}]},
        {"messages": [{"role": "user", "name": "A\x00", "content": "hi"}]},
    ):
        body = {"text": "hello"} if "messages" not in kwargs else {}
        with pytest.raises(InvalidInput):
            sdk.add(**body, user_id=user, **kwargs)
    with pytest.raises(InvalidInput):
        sdk.update(rec.id, metadata={"k": {"n": "\x00"}})
    with pytest.raises(InvalidInput):
        sdk.create_cube(f"c-{uuid.uuid4().hex[:8]}", metadata={"x": "\x00"})
    with pytest.raises(RecordNotFound):
        sdk.get("\x00")
    assert sdk.get(rec.id).metadata == {}
