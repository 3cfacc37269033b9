"""Shares and hard delete between tenants who do not trust each other (issue 22, findings 4
and 14): a read-only recipient sees only the owner's active plaintext records and leaves no
trace on the owner's lifecycle; the owner can revoke a share (SDK, both clients, REST,
CLI); and a hard delete leaves none of the record's text behind (entities, topic labels,
tier records and files, the SQLite file and its WAL).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import inspect
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from memsvc import (
    AsyncMemoryClient,
    CubeNotFound,
    Memory,
    MemoryClient,
    PermissionDenied,
    RecordNotFound,
    SentenceTransformerEmbedder,
)
from memsvc.cli import app, common
from tests.conftest import Served

SECRET = "vq9931zk"  # only ever in the owner's soft-deleted record (no number or id holds it)
OLD = "Bluebird"  # only ever in an earlier version of a record


def _dumped(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps([v.model_dump(mode="json") for v in value])
    return json.dumps(value.model_dump(mode="json"))


def _owner_and_recipient(open_memory: Callable[..., Memory], **settings: Any):  # type: ignore[no-untyped-def]
    home = open_memory(**settings)
    return home.for_tenant("owner"), home.for_tenant("guest")


def _team(owner: Memory) -> dict[str, Any]:
    """A cube with an active record, a soft-deleted secret (mentioning an entity nothing
    else names) and a record whose earlier version said something else; organized."""
    owner.create_cube("team")
    keep = owner.add("Deploys happen on Tuesdays with Alice.", user_id="u", cube="team")[0]
    secret = owner.add(
        f"Globex pays Initech; the vault code is {SECRET}.", user_id="u", cube="team"
    )[0]
    revised = owner.add(f"The launch codename is {OLD}.", user_id="u", cube="team")[0]
    owner.update(revised.id, text="The launch codename is not decided yet.")
    owner.maintain("team")
    owner.delete(secret.id)
    return {"id": owner.get_cube("team").id, "keep": keep, "secret": secret, "revised": revised}


def test_a_recipient_sees_only_active_records(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    owner, guest = _owner_and_recipient(open_memory)
    t = _team(owner)
    owner.share_cube("team", "guest")
    secret, keep, revised, cube = t["secret"], t["keep"], t["revised"], t["id"]
    assert owner.get(secret.id).status == "deleted"  # the owner still sees it
    assert SECRET in _dumped(owner.graph("team")) or "Globex" in _dumped(owner.graph("team"))

    for call in (
        lambda: guest.get(secret.id),
        lambda: guest.history(secret.id),
        lambda: guest.lineage(secret.id),
        lambda: guest.neighbors(secret.id),
    ):
        with pytest.raises(RecordNotFound):
            call()
    assert guest.get(keep.id).content == keep.content
    for status in ("active", "all", "deleted", "archived"):
        page = guest.list(cube=cube, status=status)
        assert {r.status for r in page.items} <= {"active"}, status
        assert SECRET not in _dumped(page), status
    assert guest.list(cube=cube, status="deleted").items == []
    assert {r.id for r in guest.list(cube=cube, status="all").items} == {keep.id, revised.id}
    assert guest.list(cube=cube, filters={"tiers": ["activation"]}).items == []
    assert OLD not in _dumped(guest.history(revised.id))
    assert OLD in _dumped(owner.history(revised.id))
    assert guest.get_cube(cube).records == 2  # counts what the recipient may see

    answers = [
        guest.graph(cube),
        guest.neighbors(keep.id, depth=3),
        guest.neighbors(revised.id, depth=3),
        guest.lineage(keep.id),
        guest.recall("vault code Globex Initech", user_id="u", cube=cube),
    ]
    for answer in answers:
        text = _dumped(answer)
        assert SECRET not in text and "Globex" not in text and "Initech" not in text
    with pytest.raises(PermissionDenied):  # an export carries history and deleted records
        guest.export_cube(cube, tmp_path / "copy.memcube")
    assert owner.export_cube("team", tmp_path / "own.memcube")["records"] == 3


def test_a_recipients_recalls_leave_no_trace_on_the_owner(open_memory) -> None:  # type: ignore[no-untyped-def]
    owner, guest = _owner_and_recipient(open_memory, reinforce_flush_seconds=0)
    owner.create_cube("team")
    rec = owner.add("Deploys happen on Tuesdays.", user_id="u", cube="team")[0]
    cube = owner.share_cube("team", "guest")
    engine = owner._engine
    before = owner.get(rec.id)
    for _ in range(5):
        hits = guest.recall("when do we deploy", user_id="g", cube=cube.id)
        assert hits[0].record.id == rec.id
        asyncio.run(guest.arecall("when do we deploy", user_id="g", cube=cube.id))
    engine.reinforcer.flush()
    after = owner.get(rec.id)
    assert (after.strength, after.recall_count, after.last_recalled_at) == (
        before.strength,
        before.recall_count,
        before.last_recalled_at,
    )
    since = engine.now() - timedelta(hours=1)
    with engine.db.reading() as tx:
        cube_pk = tx.cubes.find(owner._cubes.tenant_pk, name="team").pk
        assert tx.tiers.hot_records(cube_pk, since, 1) == []  # nothing to promote
    owner.recall("when do we deploy", user_id="u", cube="team")
    engine.reinforcer.flush()
    assert owner.get(rec.id).recall_count == before.recall_count + 1  # the owner's do count


def test_a_recipients_generation_leaves_no_trace_on_the_owners_caches(open_memory) -> None:  # type: ignore[no-untyped-def]
    """A reader's `generate` neither uses nor refreshes the owner's KV caches: using one
    would mark it recently used (eviction order), rebuild a stale one, and make the cube
    one that hot records get promoted in."""
    owner, guest = _owner_and_recipient(open_memory)
    owner.create_cube("team")
    rec = owner.add("Alice's dog is called Rufus.", user_id="u", cube="team")[0]
    cache = owner.promote(rec.id)
    cube = owner.share_cube("team", "guest")
    tiers = owner._engine.tiers
    tiers.generated.clear()
    with pytest.raises(RecordNotFound):  # the owner's caches and adapters are not shared
        guest.get(cache.id)
    gen = guest.generate("What is the dog called?", user_id="g", cube=cube.id, k=1, max_tokens=2)
    assert [m.record.id for m in gen.memories] == [rec.id] and gen.cache_id is None
    after = owner.get(cache.id)
    assert (after.recall_count, after.last_recalled_at) == (
        cache.recall_count,
        cache.last_recalled_at,
    )
    assert tiers.generated == set()


def test_the_owner_revokes_a_share(open_memory) -> None:  # type: ignore[no-untyped-def]
    owner, guest = _owner_and_recipient(open_memory)
    owner.create_cube("team")
    rec = owner.add("Deploys happen on Tuesdays.", user_id="u", cube="team")[0]
    cube = owner.share_cube("team", "guest")
    assert cube.shared_with == ["guest"]
    assert guest.recall("deploy", user_id="g", cube=cube.id)  # its cube lookup is cached
    with pytest.raises(PermissionDenied):
        guest.unshare_cube(cube.id, "guest")
    assert owner.unshare_cube("team", "guest").shared_with == []
    with pytest.raises(RecordNotFound):
        guest.get(rec.id)
    with pytest.raises(CubeNotFound):
        guest.recall("deploy", user_id="g", cube=cube.id)
    with pytest.raises(CubeNotFound):
        guest.list(cube=cube.id)
    assert cube.id not in {c.id for c in guest.list_cubes()}
    assert owner.unshare_cube("team", "guest").shared_with == []  # idempotent
    with pytest.raises(CubeNotFound):
        guest.unshare_cube(cube.id, "guest")


def test_unshare_through_rest_both_clients_and_the_cli(
    served: Served, open_memory, tmp_path: Path, monkeypatch, embedder: SentenceTransformerEmbedder
) -> None:  # type: ignore[no-untyped-def]
    for cls in (MemoryClient, AsyncMemoryClient):
        want = inspect.signature(Memory.unshare_cube).parameters
        assert list(inspect.signature(cls.unshare_cube).parameters) == list(want)
    name = f"team-{uuid.uuid4().hex[:8]}"
    with (
        MemoryClient(served.url, served.keys["acme"]) as acme,
        MemoryClient(served.url, served.keys["globex"]) as globex,
    ):
        acme.create_cube(name)
        rec = acme.add("Deploys happen on Tuesdays.", user_id="u", cube=name)[0]
        gone = acme.add(f"The vault code is {SECRET}.", user_id="u", cube=name)[0]
        acme.delete(gone.id)
        cube = acme.share_cube(name, "globex")
        assert globex.get(rec.id).content == rec.content
        with pytest.raises(RecordNotFound):
            globex.get(gone.id)
        headers = {"Authorization": f"Bearer {served.keys['globex']}"}
        r = httpx.get(f"{served.url}/v1/memories/{gone.id}/history", headers=headers)
        assert r.status_code == 404 and SECRET not in r.text
        r = httpx.delete(f"{served.url}/v1/cubes/{cube.id}/share/globex", headers=headers)
        assert r.status_code == 403
        assert acme.unshare_cube(name, "globex").shared_with == []
        with pytest.raises(RecordNotFound):
            globex.get(rec.id)

        async def async_round() -> None:
            async with (
                AsyncMemoryClient(served.url, served.keys["acme"]) as a,
                AsyncMemoryClient(served.url, served.keys["globex"]) as g,
            ):
                await a.share_cube(name, "globex")
                assert (await g.get(rec.id)).id == rec.id
                assert (await a.unshare_cube(name, "globex")).shared_with == []
                with pytest.raises(CubeNotFound):
                    await g.get_cube(cube.id)

        asyncio.run(async_round())

        runner = CliRunner()
        env = {"MEMSVC_URL": None, "MEMSVC_API_KEY": None}
        remote = ["--url", served.url, "--api-key", served.keys["acme"]]
        acme.share_cube(name, "globex")
        res = runner.invoke(app, ["unshare-cube", name, "globex", "--json", *remote], env=env)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["shared_with"] == []
        with pytest.raises(CubeNotFound):
            globex.get_cube(cube.id)

    monkeypatch.setattr(common, "Memory", functools.partial(Memory, embedder=embedder))
    home = tmp_path / "data"
    local = open_memory(home)
    local.create_cube("notes")
    local.share_cube("notes", "globex")
    target = ["--data-dir", str(home)]
    if local.settings.database_url:
        target += ["--database-url", local.settings.database_url]
    res = runner.invoke(app, ["unshare-cube", "notes", "globex", *target], env=env)
    assert res.exit_code == 0, res.output
    assert "notes" in res.stdout and local.get_cube("notes").shared_with == []


# ---- hard delete -----------------------------------------------------------------------------

# long enough to need overflow pages, which a delete frees whole (without secure_delete they
# keep the text in the file)
DOOMED = "Globex bought an aardvark named Zanzibar." + " It eats ants." * 400
OTHERS = ["The weather in Oslo is cold.", "Trains to Bergen leave hourly."]


def _tier_record(mem: Memory, cube: str, source: Any, tier: str, status: str) -> str:
    """A tier record built from record `source` with its file, as the tiers store one (the
    LM that would compute the bytes plays no part in what a hard delete must remove)."""
    engine = mem._engine
    blobs = engine.tiers.blobs
    with engine.db.writing() as tx:
        row = tx.cubes.find(mem._cubes.tenant_pk, name=cube)
        rid = uuid.uuid4().hex
        rel = blobs.relpath(row.id, rid)
        blobs.write_bytes(rel, f"weights learnt from: {source.content}".encode())
        tx.records.insert(
            row,
            [
                {
                    "id": rid,
                    "tier": tier,
                    "kind": "kv_cache" if tier == "activation" else "lora_adapter",
                    "status": status,
                    "content": f"- {source.content}",
                    "source": {"records": [{"id": source.id, "version": 1}], "blob": rel},
                }
            ],
        )
    return rid


def _files_holding(home: Path, needle: bytes) -> list[str]:
    return [
        str(p.relative_to(home))
        for p in sorted(home.rglob("*"))
        if p.is_file() and needle in p.read_bytes()
    ]


@pytest.mark.sqlite_only
def test_hard_delete_leaves_no_text_behind(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "hard"
    mem = open_memory(home)
    mem.create_cube("c")
    doomed = mem.add(DOOMED, user_id="u", cube="c")[0]
    others = mem.add(OTHERS, user_id="u", cube="c")
    mem.update(others[0].id, text="The weather in Oslo is cold and wet.")
    mem.maintain("c")
    labels = [n.label for n in mem.graph("c").nodes if n.kind == "topic"]
    assert any("aardvark" in label for label in labels)  # the tree was named from it
    assert "Globex" in {n.label for n in mem.graph("c").nodes if n.kind == "entity"}
    cache = _tier_record(mem, "c", doomed, "activation", "active")
    old_cache = _tier_record(mem, "c", doomed, "activation", "deleted")
    adapter = _tier_record(mem, "c", doomed, "parametric", "active")
    unrelated = _tier_record(mem, "c", others[1], "activation", "active")

    mem.delete(doomed.id, hard=True)
    mem.flush()

    for rid in (doomed.id, cache, old_cache, adapter):
        with pytest.raises(RecordNotFound):
            mem.get(rid)
    assert mem.get(unrelated).status == "active"  # built from another record: kept
    graph = _dumped(mem.graph("c"))
    assert "Globex" not in graph and "aardvark" not in graph.lower()
    out = tmp_path / "c.memcube"
    mem.export_cube("c", out)
    assert b"Globex" not in gzip.decompress(out.read_bytes())
    # not in any file of the data directory: database, WAL, tier files, indexes (this
    # SQLite may be built with secure_delete on by default; ours asks for it on any build)
    with mem._engine.db.read_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    assert _files_holding(home, b"aardvark") == []
    assert _files_holding(home, b"Globex") == []
    # the tree comes back from what is left at the next maintenance (without the stand-in
    # cache, which maintenance would rebuild with the real LM)
    mem.delete(unrelated, hard=True)
    assert not list((home / "tiers").rglob("*.safetensors"))
    mem.maintain("c")
    assert [n for n in mem.graph("c").nodes if n.kind == "topic"]
    assert all(h.record.id != doomed.id for h in mem.recall("aardvark", user_id="u", cube="c"))
