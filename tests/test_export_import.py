"""The portable cube file: a round trip loses nothing, bad files are refused whole."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from memsvc import Conflict, InvalidInput, Memory
from memsvc.store.repos import graph, records


def _build(mem: Memory) -> None:
    mem.add(
        ["Alice moved to Berlin.", "Bob likes sushi."],
        user_id="u",
        tags=["t"],
        metadata={"src": "doc"},
        timestamp="2023-05-08T13:56:00Z",
    )
    recs = mem.add(
        messages=[
            {"content": "hello", "name": "Carol"},
            {"role": "assistant", "content": "hi Carol"},
        ],
        user_id="u",
        session_id="s1",
    )
    mem.update(recs[0].id, text="hello there", importance=0.9)
    mem.delete(recs[1].id)


def _vectors(mem: Memory, cube: str) -> dict[str, bytes]:
    engine = mem._engine
    with engine.db.reading() as tx:
        row = mem._cubes.find(tx, cube)
        return {r.id: r.embedding for r in records.iter_cube_records(tx.session(), row.pk)}


def test_round_trip_loses_nothing(open_memory, tmp_path: Path) -> None:
    src = open_memory(tmp_path / "a")
    _build(src)
    path = tmp_path / "u.memcube"
    counts = src.export_cube("user:u", path)
    # entities: alice, berlin, bob, carol (speaker, person) and carol (named in "hi Carol");
    # edges: one `follows` and five `mentions`
    assert counts == {"records": 4, "entities": 5, "edges": 6}

    dst = open_memory(tmp_path / "b")
    seen: list[int] = []
    cube = dst.import_cube(path, progress=lambda n, total: seen.append(n))
    assert cube.name == "user:u" and cube.records == 4 and seen[-1] == 4

    a = src.list(user_id="u", status="all", limit=100).items
    b = dst.list(user_id="u", status="all", limit=100).items
    strip = {"cube_id"}
    assert [r.model_dump(exclude=strip) for r in a] == [r.model_dump(exclude=strip) for r in b]
    for r in a:
        assert src.history(r.id) == dst.history(r.id)
    va, vb = _vectors(src, "user:u"), _vectors(dst, "user:u")
    assert va == vb and all(v is not None for v in va.values())
    ha = [(h.record.id, h.score) for h in src.recall("where is alice", user_id="u")]
    hb = [(h.record.id, h.score) for h in dst.recall("where is alice", user_id="u")]
    assert [i for i, _ in ha] == [i for i, _ in hb]
    assert np.allclose([s for _, s in ha], [s for _, s in hb])
    graphs = []
    for m in (src, dst):
        with m._engine.db.reading() as tx:
            pk, s = m._cubes.find(tx, "user:u").pk, tx.session()
            names = {e.pk: (e.normalized, e.type) for e in graph.entities_for_cube(s, pk)}
            edges = graph.edges_for_cube(s, pk)
            graphs.append(
                sorted(
                    (e.type, names.get(e.dst_pk) if e.dst_kind == "entity" else e.dst_kind)
                    for e in edges
                )
            )
    assert graphs[0] == graphs[1] and graphs[0].count(("follows", "record")) == 1
    assert ("mentions", ("berlin", "place")) in graphs[0]


def test_import_conflicts_and_renames(open_memory, tmp_path: Path) -> None:
    src = open_memory(tmp_path / "a")
    _build(src)
    path = tmp_path / "u.memcube"
    src.export_cube("user:u", path)
    with pytest.raises(Conflict, match="already exists"):
        src.import_cube(path)
    with pytest.raises(Conflict):  # same record ids already here
        src.import_cube(path, cube="copy")
    assert [c.name for c in src.list_cubes()] == ["user:u"]
    dst = open_memory(tmp_path / "b")
    assert dst.import_cube(path, cube="restored").name == "restored"
    assert len(dst.recall("sushi", user_id="anyone", cube="restored")) == 3


def test_damaged_files_are_refused_whole(open_memory, tmp_path: Path) -> None:
    src = open_memory(tmp_path / "a")
    _build(src)
    path = tmp_path / "u.memcube"
    src.export_cube("user:u", path)
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    dst = open_memory(tmp_path / "b")

    truncated = tmp_path / "cut.memcube"
    truncated.write_bytes(gzip.compress(b"".join(lines[:-2])))
    with pytest.raises(InvalidInput, match="truncated"):
        dst.import_cube(truncated)

    not_cube = tmp_path / "x.memcube"
    not_cube.write_text("hello")
    with pytest.raises(InvalidInput, match="not a memsvc cube file"):
        dst.import_cube(not_cube)
    with pytest.raises(InvalidInput, match="no cube file"):
        dst.import_cube(tmp_path / "missing.memcube")
    assert dst.list_cubes() == []
