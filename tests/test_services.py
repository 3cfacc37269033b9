"""The service layer's contract: a thin facade, snapshots from the store, the change log
appended in one place, and the index spec stored with the cube and described back."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from pathlib import Path

import pytest

import memsvc
from memsvc.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[1] / "memsvc"


def test_memory_methods_are_short_delegations() -> None:
    """Every public method of `Memory` is a docstring and at most a few statements: the work
    lives in memsvc/services/."""
    tree = ast.parse((ROOT / "memory.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Memory")
    long = {}
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or fn.name == "_attach":
            continue
        body = [
            s
            for s in fn.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        ]
        if len(body) > 4 and fn.name != "__init__":
            long[fn.name] = len(body)
    assert long == {}


def test_long_modules_say_why() -> None:
    """No module over about 500 lines without a reason in its docstring."""
    unexplained = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 520:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "longer than" not in doc:
                unexplained.append(str(path.relative_to(ROOT)))
    assert unexplained == []


def test_store_snapshots_are_frozen_and_changes_are_logged(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mem = open_memory(tmp_path / "m")
    rec = mem.add("Alice moved to Berlin in May.", user_id="u")[0]
    db = mem._engine.db
    with db.reading() as tx:
        cube = tx.cubes.find(mem._cubes.tenant_pk, name="user:u")
        assert cube is not None
        before = tx.changes.newest(cube.pk)
        data = tx.records.get(mem._cubes.tenant_pk, rec.id)
    assert data is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        data[0].content = "changed"  # type: ignore[misc]
    mem.update(rec.id, tags=["moved"])
    mem.delete(rec.id)
    with db.reading() as tx:
        assert tx.changes.newest(cube.pk) == before + 2
        versions = tx.versions.of(data[0].pk)
    assert [v.change for v in versions] == ["create", "update", "delete"]


def test_index_spec_is_stored_with_the_cube_and_described_back(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mem = open_memory(tmp_path / "m")
    cube = mem.create_cube("specs", search_mode="SQ8,Rescore20")
    assert cube.search_mode == "SQ8,Rescore20"
    mem.add(["Alice plays the cello.", "Bob bakes bread."], user_id="u", cube="specs")
    info = mem.index_info("specs")
    assert info.spec == "SQ8,Rescore20"
    assert mem.recall("who plays music?", user_id="u", cube="specs")[0].record.content.startswith(
        "Alice"
    )
    legacy = mem.create_cube("legacy", search_mode="binary+rescore")
    assert legacy.search_mode == "binary+rescore"
    with pytest.raises(InvalidInput, match="Rescore0"):
        mem.create_cube("bad", search_mode="SQ8,Rescore0")


def test_arecall_is_recall_for_an_event_loop(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mem = open_memory(tmp_path / "m")
    mem.add(["Alice plays the cello.", "Bob bakes bread."], user_id="u")
    sync = mem.recall("who bakes?", user_id="u", k=2)
    hits = asyncio.run(mem.arecall("who bakes?", user_id="u", k=2))
    assert [h.record.id for h in hits] == [h.record.id for h in sync]
    assert isinstance(hits[0], memsvc.Hit)


def test_a_second_tenant_reaches_nothing_through_the_services(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Tenant B, on the same data directory, tries every record and cube call on tenant A's
    data: not found before a share; read-only after it."""
    from memsvc.errors import CubeNotFound, PermissionDenied, RecordNotFound

    alice = open_memory(tmp_path / "m")
    a = alice.for_tenant("a")
    b = alice.for_tenant("b")
    a.create_cube("private")
    rec = a.add("Alice's door code is 4711.", user_id="u", cube="private")[0]
    cube_id = a.get_cube("private").id
    for call in (
        lambda: b.get(rec.id),
        lambda: b.history(rec.id),
        lambda: b.lineage(rec.id),
        lambda: b.neighbors(rec.id),
        lambda: b.update(rec.id, text="changed"),
        lambda: b.delete(rec.id, hard=True),
        lambda: b.restore(rec.id),
    ):
        with pytest.raises(RecordNotFound):
            call()
    for call in (
        lambda: b.get_cube(cube_id),
        lambda: b.graph(cube_id),
        lambda: b.recall("door code", user_id="u", cube=cube_id),
        lambda: b.list(cube=cube_id),
        lambda: b.delete_cube(cube_id),
        lambda: b.index_info(cube_id),
    ):
        with pytest.raises(CubeNotFound):
            call()
    assert b.recall("door code", user_id="u") == []  # B's own default cube: empty
    a.share_cube("private", "b")
    assert b.get(rec.id).content == rec.content
    for call in (
        lambda: b.update(rec.id, text="changed"),
        lambda: b.delete(rec.id),
        lambda: b.add("mine now", user_id="u", cube=cube_id),
        lambda: b.delete_cube(cube_id),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert a.get(rec.id).content == rec.content and a.get(rec.id).status == "active"
